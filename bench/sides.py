"""Baseline sides of the comparisons, run in their own child process: ``python -m bench.sides NAME ARGS``."""

from __future__ import annotations

import sys
import warnings


def ceiling_columns(ndjson: str) -> str:
    """The NDJSON's columns as read_json's ``columns`` argument, detected from every line (not timed: the
    time-ordered bulk file starts with many copies of the same few events, so a sample misses keys)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    described = con.execute("DESCRIBE SELECT * FROM read_json(?, format = 'newline_delimited', sample_size = -1)",
                            [ndjson]).fetchall()
    quote = "'{}'".format
    return "{" + ", ".join(f"{quote(n.replace(chr(39), chr(39) * 2))}: {quote(t.replace(chr(39), chr(39) * 2))}"
                           for n, t, *_ in described) + "}"


def ceiling(db: str, ndjson: str, columns_file: str) -> None:
    """B2 ceiling: DuckDB read_json of the NDJSON into a plain table, its columns known in advance."""
    from pathlib import Path

    import duckdb

    columns = Path(columns_file).read_text()
    con = duckdb.connect(db)
    con.execute("SET enable_progress_bar = false")
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_json(?, format = 'newline_delimited', columns = {columns})",
                [ndjson])
    con.close()


def pandas_export(db: str, out: str) -> None:
    """B7 baseline: pandas read_sql of the events dataset, then to_csv."""
    import duckdb
    import pandas as pd

    from queries.catalog import QUERIES
    from queries.filters import Filters

    con = duckdb.connect(db, read_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = pd.read_sql(QUERIES["events"].sql, con, params=Filters().params())  # every filter unset
    frame.to_csv(out, index=False)


def typed_graph(url: str, token: str, db: str, max_pages: str) -> None:
    """B1 baseline: msgraph-sdk's typed models (get() + with_url(nextLink)), models to rows, rows into DuckDB."""
    import asyncio

    import duckdb
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph import GraphServiceClient
    from msgraph.generated.audit_logs.provisioning.provisioning_request_builder import ProvisioningRequestBuilder
    from msgraph.graph_request_adapter import GraphRequestAdapter

    from ingest.graph.auth import static_token_provider

    async def pull() -> list[tuple]:
        adapter = GraphRequestAdapter(static_token_provider(token))
        adapter.base_url = url
        client = GraphServiceClient(request_adapter=adapter)
        query = ProvisioningRequestBuilder.ProvisioningRequestBuilderGetQueryParameters(top=999)
        page = await client.audit_logs.provisioning.get(RequestConfiguration(query_parameters=query))
        rows: list[tuple] = []
        for n in range(int(max_pages)):
            for e in page.value or []:
                info = e.provisioning_status_info
                err = info.error_information if info else None
                rows.append((e.id, e.activity_date_time, e.job_id, e.cycle_id, e.change_id,
                             str(e.provisioning_action) if e.provisioning_action else None,
                             str(info.status) if info and info.status else None,
                             err.error_code if err else None, err.reason if err else None,
                             e.service_principal.id if e.service_principal else None,
                             e.source_identity.id if e.source_identity else None,
                             e.target_identity.id if e.target_identity else None, e.duration_in_milliseconds))
            if not page.odata_next_link or n + 1 >= int(max_pages):
                break
            page = await client.audit_logs.provisioning.with_url(page.odata_next_link).get()
        return rows

    rows = asyncio.run(pull())
    con = duckdb.connect(db)
    con.execute("CREATE TABLE events (id VARCHAR, activity_time TIMESTAMPTZ, job_id VARCHAR, cycle_id VARCHAR, "
                "change_id VARCHAR, action VARCHAR, status VARCHAR, error_code VARCHAR, error_reason VARCHAR, "
                "service_principal_id VARCHAR, source_id VARCHAR, target_id VARCHAR, duration_ms BIGINT)")
    con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.close()
    print(len(rows))


def b4_pandas(db: str, asked_json: str, reps: str) -> None:
    """B4's pandas side: load the events, requests and correlation into DataFrames once (not timed: "already in
    memory"), then time each twin in ``asked_json`` ([{query, params}]) ``reps`` times; prints one JSON line
    {"medians": {query: ms}, "rows": n, "scim_rows": n}."""
    import inspect
    import json
    import statistics
    import time

    from bench.pandas_equivalents import PANDAS, load_frames

    df, frames = load_frames(db)
    medians = {}
    for item in json.loads(asked_json):
        twin = PANDAS[item["query"]]
        wanted = inspect.signature(twin).parameters
        kwargs = {k: v for k, v in {**item["params"], **frames}.items() if k in wanted}
        times = []
        for _ in range(int(reps)):
            t0 = time.perf_counter()
            twin(df, **kwargs)
            times.append(time.perf_counter() - t0)
        medians[item["query"]] = statistics.median(times) * 1000
    print(json.dumps({"medians": medians, "rows": len(df), "scim_rows": len(frames["scim"])}))


if __name__ == "__main__":
    {"ceiling": ceiling, "pandas_export": pandas_export, "typed_graph": typed_graph,
     "b4_pandas": b4_pandas}[sys.argv[1]](*sys.argv[2:])
