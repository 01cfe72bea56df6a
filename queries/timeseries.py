"""The charts' time series in bins that follow the range ($bucket: ``hour``, ``day`` or ``week``; weeks start on
Monday, all in UTC): events by status, the success rate, failures by error code, skips by category, and sync
cycles per job by kind and outcome. The page picks the bin from the period (pages/timebins.py).

Each named query here has its plain reference in :data:`REFERENCES` (``date_trunc`` over the source tables or
over the cycles reference), merged into :data:`queries.reference.REFERENCES`, so tests/test_reference_oracle.py
and tests/test_chart_bins.py hold them equal.
"""

from __future__ import annotations

from queries.filters import EVENT_COUNTS, EVENT_FILTER
from queries.named import Query, q

_BUCKET = "coalesce($bucket::VARCHAR, 'hour')"
_HOUR_US, _DAY_US, _WEEK_US = 3_600_000_000, 86_400_000_000, 604_800_000_000
_MONDAY_SHIFT_US = 3 * _DAY_US  # 1970-01-01 was a Thursday: the Monday before it is 3 days earlier


def bin_of(column: str) -> str:
    """The UTC bin start of ``column`` (a TIMESTAMPTZ) for $bucket, by integer arithmetic on microseconds
    (``date_trunc`` on TIMESTAMPTZ goes through ICU and is much slower over the hourly rollup)."""
    us = f"epoch_us({column})"
    return (f"(CASE {_BUCKET} WHEN 'day' THEN make_timestamptz({us} // {_DAY_US} * {_DAY_US}) "
            f"WHEN 'week' THEN make_timestamptz(({us} + {_MONDAY_SHIFT_US}) // {_WEEK_US} * {_WEEK_US} "
            f"- {_MONDAY_SHIFT_US}) "
            f"ELSE make_timestamptz({us} // {_HOUR_US} * {_HOUR_US}) END)")


# A cycle's outcome, for the Sync cycles chart (pages/palette.py CYCLE_OUTCOME colours them).
CYCLE_OUTCOME_SQL = ("CASE WHEN failure > 0 THEN 'with failures' WHEN success > 0 THEN 'succeeded' "
                     "WHEN skipped > 0 THEN 'skips only' ELSE 'warnings only' END")


def _cycles_over_time(cycles_sql: str) -> str:
    return f"""
        SELECT job_id, service_principal_id, any_value(service_principal_name) AS service_principal_name,
               {bin_of('started_at')} AS bucket, kind, {CYCLE_OUTCOME_SQL} AS outcome,
               count(*)::BIGINT AS cycles, sum(events)::BIGINT AS events
        FROM ({cycles_sql}) AS c
        GROUP BY ALL ORDER BY service_principal_name, job_id, bucket, kind, outcome"""


def query_list(cycles_timeline_sql: str) -> list[Query]:
    """The named queries; ``cycles_timeline_sql``: the named ``cycles_timeline`` (every cycle in the period)."""
    return [
        q("events_by_status_over_time", "Events per $bucket (hour, day or week, UTC) and status", f"""
            SELECT {bin_of('hour')} AS bucket, status, sum(events)::BIGINT AS events
            FROM {EVENT_COUNTS} AS c
            GROUP BY ALL ORDER BY bucket, status"""),
        q("success_rate_over_time", "Success rate per $bucket (success / (success + failure)); bins with events "
          "but no success or failure have no rate", f"""
            SELECT {bin_of('hour')} AS bucket,
                   coalesce(sum(events) FILTER (WHERE status = 'success'), 0)::BIGINT AS success,
                   coalesce(sum(events) FILTER (WHERE status = 'failure'), 0)::BIGINT AS failure,
                   coalesce(sum(events) FILTER (WHERE status = 'success'), 0)::DOUBLE
                       / nullif(sum(events) FILTER (WHERE status IN ('success', 'failure')), 0) AS success_rate
            FROM {EVENT_COUNTS} AS c
            GROUP BY ALL ORDER BY bucket"""),
        q("failures_by_code_over_time", "Failures per $bucket and error code", f"""
            SELECT {bin_of('hour')} AS bucket, coalesce(error_code, '(none)') AS error_code,
                   sum(events)::BIGINT AS failures
            FROM {EVENT_COUNTS} AS c WHERE status = 'failure'
            GROUP BY ALL ORDER BY bucket, error_code"""),
        q("skips_by_category_over_time", "Skipped events per $bucket and category", f"""
            SELECT {bin_of('hour')} AS bucket, coalesce(skip_category, 'other') AS skip_category,
                   sum(events)::BIGINT AS skips
            FROM {EVENT_COUNTS} AS c WHERE status = 'skipped'
            GROUP BY ALL ORDER BY bucket, skip_category"""),
        q("cycles_over_time", "Logged sync cycles per job, $bucket (of their start), kind (initial or incremental) "
          "and outcome", _cycles_over_time(cycles_timeline_sql)),
    ]


_REF_BIN = "date_trunc(coalesce($bucket::VARCHAR, 'hour'), {col})"  # the oracle's session runs in UTC


def references(cycles_timeline_reference: str) -> dict[str, str]:
    """Plain references: ``date_trunc`` over ``events`` (and over the cycles reference)."""
    return {
        "events_by_status_over_time": f"""
            SELECT {_REF_BIN.format(col='activity_time')} AS bucket, status, count(*) AS events
            FROM events WHERE {EVENT_FILTER} GROUP BY ALL ORDER BY bucket, status""",
        "success_rate_over_time": f"""
            SELECT {_REF_BIN.format(col='activity_time')} AS bucket,
                   count(*) FILTER (WHERE status = 'success') AS success,
                   count(*) FILTER (WHERE status = 'failure') AS failure,
                   count(*) FILTER (WHERE status = 'success')::DOUBLE
                       / nullif(count(*) FILTER (WHERE status IN ('success', 'failure')), 0) AS success_rate
            FROM events WHERE {EVENT_FILTER} GROUP BY ALL ORDER BY bucket""",
        "failures_by_code_over_time": f"""
            SELECT {_REF_BIN.format(col='activity_time')} AS bucket, coalesce(error_code, '(none)') AS error_code,
                   count(*) AS failures
            FROM events WHERE status = 'failure' AND {EVENT_FILTER} GROUP BY ALL ORDER BY bucket, error_code""",
        "skips_by_category_over_time": f"""
            SELECT {_REF_BIN.format(col='activity_time')} AS bucket, coalesce(skip_category, 'other') AS skip_category,
                   count(*) AS skips
            FROM events WHERE status = 'skipped' AND {EVENT_FILTER} GROUP BY ALL ORDER BY bucket, skip_category""",
        "cycles_over_time": f"""
            SELECT job_id, service_principal_id, any_value(service_principal_name) AS service_principal_name,
                   {_REF_BIN.format(col='started_at')} AS bucket, kind, {CYCLE_OUTCOME_SQL} AS outcome,
                   count(*) AS cycles, sum(events)::BIGINT AS events  -- a count, not a HUGEINT
            FROM ({cycles_timeline_reference}) AS c
            GROUP BY ALL ORDER BY service_principal_name, job_id, bucket, kind, outcome""",
    }
