"""The filters every page and export share: time window, enterprise apps, job, identity type, and the event filters
(status, action, error code, skip category, identity, cycle id, change id), compiled to SQL with bound parameters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The shared time window's bounds, open ends infinite: [SINCE, UNTIL).
SINCE = "coalesce($since::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ)"
UNTIL = "coalesce($until::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ)"


def time_filter(column: str) -> str:
    """The shared time window on ``column`` (an expression giving a TIMESTAMPTZ)."""
    return f"{column} >= {SINCE} AND {column} < {UNTIL}"


def scope_filter(alias: str = "", *, unknown_app_passes: bool = False) -> str:
    """The shared enterprise-app and job filters on a relation with service_principal_id and job_id (``alias``: the
    table's alias). ``unknown_app_passes``: a row with no app (a SCIM request nobody matched) passes any app filter;
    such relations have no job column."""
    a = alias + "." if alias else ""
    if unknown_app_passes:
        return (f"($sps::VARCHAR[] IS NULL OR {a}service_principal_id IS NULL "
                f"OR list_contains($sps::VARCHAR[], {a}service_principal_id))")
    return (f"($sps::VARCHAR[] IS NULL OR list_contains($sps::VARCHAR[], {a}service_principal_id)) "
            f"AND ($job::VARCHAR IS NULL OR {a}job_id = $job::VARCHAR)")


# The shared apps and job, without a time (relations that have none, or whose time is filtered elsewhere).
SCOPE_FILTER = scope_filter()

# The identity types ($types: Entra's sourceIdentity.identityType, e.g. User, Group) on a relation of events (or
# rows copied from them) with ``source_type``. Cycles and job snapshots are not per object: they ignore it.
TYPE_FILTER = "($types::VARCHAR[] IS NULL OR list_contains($types::VARCHAR[], source_type))"
NO_TYPE_FILTER = "($types::VARCHAR[] IS NULL)"

# Appended to a WHERE clause on a relation with activity_time, service_principal_id, job_id and source_type.
EVENT_FILTER = time_filter("activity_time") + " AND " + SCOPE_FILTER + " AND " + TYPE_FILTER

# The event filters (Entra's provisioning-logs filters), each a bound parameter, NULL = not filtered:
# $statuses, $actions, $codes (error codes), $skips (skip categories): lists matched exactly; $who: one identity,
# equal (case-insensitive) to the source UPN, the target userName, the source id or the target id; $cycle and
# $change: a cycle id and a change id, matched exactly.
_DETAIL_PARTS = {
    "status": "($statuses::VARCHAR[] IS NULL OR list_contains($statuses::VARCHAR[], {a}status))",
    "action": "($actions::VARCHAR[] IS NULL OR list_contains($actions::VARCHAR[], {a}action))",
    "error": "($codes::VARCHAR[] IS NULL OR list_contains($codes::VARCHAR[], {a}error_code))",
    "skip": "($skips::VARCHAR[] IS NULL OR list_contains($skips::VARCHAR[], {a}skip_category))",
    "identity": ("($who::VARCHAR IS NULL OR lower({a}source_upn) = lower($who::VARCHAR) "
                 "OR lower({a}user_name) = lower($who::VARCHAR) OR lower({a}source_id) = lower($who::VARCHAR) "
                 "OR lower({a}target_id) = lower($who::VARCHAR))"),
    "cycle": "($cycle::VARCHAR IS NULL OR {a}cycle_id = $cycle::VARCHAR)",
    "change": "($change::VARCHAR IS NULL OR {a}change_id = $change::VARCHAR)",
}
DETAIL_NAMES = tuple(_DETAIL_PARTS)
# True when no event filter is set (a constant once bound: queries that read a stored all-time summary take it only
# then).
DETAIL_UNSET = ("($statuses::VARCHAR[] IS NULL AND $actions::VARCHAR[] IS NULL AND $codes::VARCHAR[] IS NULL "
                "AND $skips::VARCHAR[] IS NULL AND $who::VARCHAR IS NULL AND $cycle::VARCHAR IS NULL "
                "AND $change::VARCHAR IS NULL)")


def detail_filter(alias: str = "", *, skip: bool = True) -> str:
    """The event filters on a relation of events (or rows copied from them: ``alias`` its alias). ``skip=False``:
    the relation has no skip_category (failures), and the skip-category filter is not applied to it."""
    a = alias + "." if alias else ""
    return " AND ".join(part.format(a=a) for name, part in _DETAIL_PARTS.items() if skip or name != "skip")


DETAIL_FILTER = detail_filter()


# Event counts for the shared filters from the store's hourly rollup (ingest/summaries/events.py): the whole UTC
# hours inside [since, until) come from derived_event_hours, the ragged edges (a window that does not
# start or end on the hour) from the events themselves, so the counts are exact for any window.
# Columns: hour, service_principal_id, job_id, status, action, error_code, skip_category, skip_reason,
# source_type, events, first_time, last_time. Use as ``FROM {EVENT_COUNTS} AS c``; sum(events) is the event count.
_FULL_FROM = ("CASE WHEN $since::TIMESTAMPTZ IS NULL THEN '-infinity'::TIMESTAMPTZ ELSE make_timestamptz("
              "(epoch_us($since::TIMESTAMPTZ) + 3599999999) // 3600000000 * 3600000000) END")
_FULL_TO = ("CASE WHEN $until::TIMESTAMPTZ IS NULL THEN 'infinity'::TIMESTAMPTZ ELSE make_timestamptz("
            "epoch_us($until::TIMESTAMPTZ) // 3600000000 * 3600000000) END")
_COUNT_COLUMNS = "service_principal_id, job_id, status, action, error_code, skip_category, skip_reason, source_type"
EVENT_COUNTS = f"""(
    SELECT hour, {_COUNT_COLUMNS}, events, first_time, last_time
    FROM derived_event_hours
    WHERE hour >= {_FULL_FROM} AND hour < {_FULL_TO}
      AND {SCOPE_FILTER} AND {TYPE_FILTER}
    UNION ALL
    SELECT make_timestamptz(epoch_us(activity_time) // 3600000000 * 3600000000), {_COUNT_COLUMNS}, 1,
           activity_time, activity_time
    FROM events
    WHERE {EVENT_FILTER} AND (activity_time < {_FULL_FROM} OR activity_time >= {_FULL_TO})
)"""
# The UTC day of an hour (date_trunc('day', ...) on TIMESTAMPTZ goes through ICU and is much slower).
DAY_OF_HOUR = "make_timestamptz(epoch_us(hour) // 86400000000 * 86400000000)"


@dataclass(frozen=True)
class Filters:
    """``since`` inclusive, ``until`` exclusive, both UTC; ``None`` means open-ended / all. ``identity_types``:
    Entra's identity types to keep (``User``, ``Group``, ...), matched exactly."""

    since: datetime | None = None
    until: datetime | None = None
    service_principal_ids: tuple[str, ...] | None = None
    job_id: str | None = None
    identity_types: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    actions: tuple[str, ...] | None = None
    error_codes: tuple[str, ...] | None = None
    skip_categories: tuple[str, ...] | None = None
    identity: str | None = None
    cycle_id: str | None = None
    change_id: str | None = None

    def params(self) -> dict:
        return {
            "since": self.since,
            "until": self.until,
            "sps": list(self.service_principal_ids) if self.service_principal_ids else None,
            "job": self.job_id or None,
            "types": list(self.identity_types) if self.identity_types else None,
            "statuses": list(self.statuses) if self.statuses else None,
            "actions": list(self.actions) if self.actions else None,
            "codes": list(self.error_codes) if self.error_codes else None,
            "skips": list(self.skip_categories) if self.skip_categories else None,
            "who": self.identity.strip() if self.identity and self.identity.strip() else None,
            "cycle": self.cycle_id or None,
            "change": self.change_id or None,
        }

    def details(self) -> dict:
        """The event filters that are set, by URL parameter name (status, action, error, skip, identity, cycle,
        change)."""
        values = {"status": self.statuses, "action": self.actions, "error": self.error_codes,
                  "skip": self.skip_categories, "identity": self.identity, "cycle": self.cycle_id,
                  "change": self.change_id}
        return {k: v for k, v in values.items() if v}


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """A point in time in provlens's one grammar (:mod:`ingest.timespec`): RFC 3339, a date, or ``2w``/``30d``/
    ``12h`` before now."""
    from ingest.timespec import parse_when

    return parse_when(value, now)
