"""A named query: SQL with bound parameters and a sentence saying what it answers. The topic modules
(:mod:`queries.datasets`, :mod:`queries.pages`, :mod:`queries.scim`) declare theirs with :func:`q`;
:mod:`queries.catalog` merges them (it is the only module that imports them all)."""

from __future__ import annotations

from dataclasses import dataclass

from queries.filters import EVENT_FILTER


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    sql: str


def q(name: str, description: str, sql: str) -> Query:
    """A named query; the placeholder ``{EVENT_FILTER}`` in its SQL stands for the shared time/app/job filter."""
    return Query(name, description, sql.replace("{EVENT_FILTER}", EVENT_FILTER))
