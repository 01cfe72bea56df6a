"""The dashboard's local copy of a lake tenant (ingest/lake/cache.py, Store.replace_source_rows): every named query
that has a plain reference answers on the copy what the reference answers on the tenant's own store, under the
oracle's filters; a second build replaces the rows (no duplicate); a tenant's copy holds that tenant's rows only."""

from __future__ import annotations

import duckdb
import pytest

from ingest.lake import cache
from queries.catalog import QUERIES
from queries.db import release, run, run_sql
from queries.reference import REFERENCES
from tests.lake_tenants import other_store, two_tenant_lake
from tests.test_reference_oracle import _comparable, _samples


@pytest.fixture(scope="module")
def stores(demo_db, tmp_path_factory) -> dict[str, str]:
    return {"contoso": str(demo_db), "fabrikam": other_store(tmp_path_factory.mktemp("other"))}


@pytest.fixture(scope="module")
def copies(stores, tmp_path_factory) -> tuple[str, dict[str, str]]:
    lake = two_tenant_lake(stores["contoso"], stores["fabrikam"], tmp_path_factory.mktemp("lake"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(cache.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        paths = {tenant: cache.ensure(lake, tenant)[0] for tenant in stores}
    return lake, paths


def _differences(copy: str, store: str, filters, samples: dict) -> list[str]:
    failures = []
    for name, reference in sorted(REFERENCES.items()):
        sql = QUERIES[name].sql
        params = {k: v for k, v in samples["params"].items() if f"${k}" in sql}
        got = run(copy, name, filters, **params)
        with duckdb.connect(store, read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            want = run_sql(con, reference, filters.params() | params)
        if list(got.columns) != list(want.columns) or _comparable(got) != _comparable(want):
            failures.append(f"{name}: {len(got)} rows on the copy vs {len(want)} by the reference on the store")
    release(copy)
    return failures


@pytest.mark.parametrize("tenant", ["contoso", "fabrikam"])
@pytest.mark.parametrize("filter_name", ["all", "last_2_days", "one_app"])
def test_every_named_query_on_the_copy_equals_the_reference_on_the_store(copies, stores, tenant, filter_name):
    _lake, paths = copies
    samples = _samples(stores[tenant])
    assert not _differences(paths[tenant], stores[tenant], samples["filters"][filter_name], samples)


def _counts(db: str) -> dict[str, tuple]:
    with duckdb.connect(db, read_only=True) as con:
        return {"events": con.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone(),
                "scim_requests": con.execute("SELECT count(*), count(DISTINCT request_id) FROM scim_requests")
                .fetchone()}


def test_each_copy_holds_its_tenant_rows_once(copies, stores, tmp_path, monkeypatch):
    lake, paths = copies
    for tenant, path in paths.items():
        assert _counts(path) == _counts(stores[tenant]), tenant
    # a copy whose recorded lake versions no longer match is built again, with the same rows (never added to)
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    first, _ = cache.ensure(lake, "fabrikam")
    with duckdb.connect(first) as con:
        con.execute("UPDATE meta SET value = '{}' WHERE key = ?", [cache.VERSIONS_KEY])
    path, seconds = cache.ensure(lake, "fabrikam")
    assert path == first and seconds > 0
    assert _counts(path) == _counts(stores["fabrikam"])
    assert cache.ensure(lake, "fabrikam")[1] == 0  # current now: not built again
