"""The named queries. Each is SQL with bound parameters ($since, $until, $sps, $job, ...).

This module holds the core event queries and merges the lists of the topic modules (``QUERY_LIST`` in
:mod:`queries.pages`, :mod:`queries.datasets`, :mod:`queries.scim`, :mod:`queries.events`, :mod:`queries.event`,
...; none of them imports this one) into :data:`QUERIES`. Call them with :func:`queries.db.run`; pages
never write SQL themselves.
"""

from __future__ import annotations

from queries import alert_history, datasets, event, events, pages, preflight, scim, timeseries
from queries.datasets import EVENT_EXPORT_COLUMNS, OPEN_RUNS_SQL
from queries.filters import DAY_OF_HOUR, DETAIL_FILTER, EVENT_COUNTS, SCOPE_FILTER, SINCE
from queries.named import Query, q

# "The period is all time", "every app and job": constants once bound (DuckDB drops the branch not taken).
# An identity-type filter counts identities and cycles from its events, as a period does (the all-time summaries
# are not per type).
_ALL_TIME = "($since::TIMESTAMPTZ IS NULL AND $until::TIMESTAMPTZ IS NULL AND $types::VARCHAR[] IS NULL)"
_NO_SCOPE = "($sps::VARCHAR[] IS NULL AND $job::VARCHAR IS NULL)"

_ALL = [
    # Counts from the hourly rollup. Identities and cycles: all time from the per-identity names and per-cycle
    # summaries, a period from its events. failed_identities: source objects with a failure in the period;
    # failing_identities: those still failing at its end (the recurring-failures open run, any length).
    q("overview_kpis", "Events, outcomes, success rate, identities, and identities failed / still failing", f"""
        WITH counts AS (
            SELECT coalesce(sum(events), 0)::BIGINT AS events,
                   coalesce(sum(events) FILTER (WHERE status = 'success'), 0)::BIGINT AS success,
                   coalesce(sum(events) FILTER (WHERE status = 'failure'), 0)::BIGINT AS failure,
                   coalesce(sum(events) FILTER (WHERE status = 'skipped'), 0)::BIGINT AS skipped,
                   coalesce(sum(events) FILTER (WHERE status = 'warning'), 0)::BIGINT AS warning,
                   min(first_time) AS first_event, max(last_time) AS last_event
            FROM {EVENT_COUNTS} AS c),
        all_time AS (  -- the store's per-source (no app or job filter) or per-identity summaries
            SELECT count(*) AS identities, count(*) FILTER (WHERE failed) AS failed_identities
            FROM derived_sources WHERE {_ALL_TIME} AND {_NO_SCOPE}
            UNION ALL  -- one row per source object first: cheaper than two distinct counts
            SELECT count(*), count(*) FILTER (WHERE failed) FROM (
                SELECT source_id, bool_or(failures > 0) AS failed FROM derived_identities
                WHERE source_id IS NOT NULL AND {SCOPE_FILTER} AND {_ALL_TIME} AND NOT {_NO_SCOPE}
                GROUP BY source_id)),
        all_time_cycles AS (
            SELECT count(DISTINCT (job_id, cycle_id)) AS cycles FROM derived_cycles
            WHERE {SCOPE_FILTER} AND {_ALL_TIME}),
        in_period AS (
            SELECT count(DISTINCT source_id) AS identities, count(DISTINCT (job_id, cycle_id)) AS cycles
            FROM events WHERE {{EVENT_FILTER}} AND NOT {_ALL_TIME}),
        failed_in_period AS (
            SELECT count(DISTINCT source_id) AS failed_identities FROM derived_failures
            WHERE {{EVENT_FILTER}} AND NOT {_ALL_TIME}),
        failing AS (
            SELECT count(DISTINCT source_id) AS failing_identities FROM {OPEN_RUNS_SQL} AS r
            WHERE last_failure >= {SINCE})
        SELECT c.events, c.success, c.failure, c.skipped, c.warning,
               CASE WHEN {_ALL_TIME} THEN a.identities ELSE p.identities END AS identities,
               CASE WHEN {_ALL_TIME} THEN a.failed_identities ELSE f.failed_identities END AS failed_identities,
               g.failing_identities, CASE WHEN {_ALL_TIME} THEN ac.cycles ELSE p.cycles END AS cycles,
               CASE WHEN c.success + c.failure > 0 THEN c.success::DOUBLE / (c.success + c.failure) END AS success_rate,
               c.first_event, c.last_event
        FROM counts c,
             (SELECT sum(identities)::BIGINT AS identities, sum(failed_identities)::BIGINT AS failed_identities
              FROM all_time) a, all_time_cycles ac, in_period p, failed_in_period f, failing g"""),
    q("events_per_day_by_status", "Events per UTC day and status", f"""
        SELECT {DAY_OF_HOUR} AS day, status, sum(events)::BIGINT AS events
        FROM {EVENT_COUNTS} AS c
        GROUP BY ALL ORDER BY day, status"""),
    q("service_principals", "Enterprise apps (service principals) seen in the data", """
        SELECT service_principal_id, any_value(service_principal_name) AS service_principal_name,
               sum(events)::BIGINT AS events, max(ended_at) AS last_event
        FROM derived_cycles GROUP BY service_principal_id ORDER BY service_principal_name, service_principal_id"""),
    q("data_range", "First and last event time in the whole database", """
        SELECT min(activity_time) AS first_event, max(activity_time) AS last_event, count(*) AS events
        FROM events"""),
    # last_warning: the last run's warning line (ingest/emptiness.py), e.g. events that mostly lack a status
    q("freshness", "Per source: the last ingest run, the last successful one, its warning, and the newest event", """
        WITH runs AS (
            SELECT source, max(ended_at) FILTER (WHERE outcome = 'success') AS last_success,
                   arg_max(outcome, started_at) AS last_outcome, max(started_at) AS last_started,
                   arg_max(message, started_at) AS last_message
            FROM ingest_runs GROUP BY source)
        SELECT r.source, r.last_started, r.last_outcome, r.last_success, r.last_message,
               nullif(regexp_extract(r.last_message, '(?m)^warning: (.*)$', 1), '') AS last_warning,
               (SELECT max(ended_at) FROM derived_cycles) AS newest_event
        FROM runs r ORDER BY r.source"""),
    q("newest_cycle_end", "The latest end of a sync cycle that started before $until, at most $until (the data's "
      "lag, when the newest event is dated in the future)", """
        SELECT max(least(ended_at, $until::TIMESTAMPTZ)) AS newest FROM derived_cycles
        WHERE started_at < $until::TIMESTAMPTZ"""),
    q("meta", "Database metadata (demo flag, simulator parameters)", "SELECT key, value FROM meta ORDER BY key"),
    q("summaries_pending", "Ingest runs whose events the summaries do not count yet (a fast pull refreshes them at "
      "its end)", "SELECT count(*) AS runs FROM summary_pending_runs"),
    q("events", "One row per provisioning event (audit export)", f"""
        SELECT {', '.join(EVENT_EXPORT_COLUMNS)}
        FROM events WHERE {{EVENT_FILTER}} AND {DETAIL_FILTER} ORDER BY activity_time, id"""),
]



def _collect() -> dict[str, Query]:
    merged: dict[str, Query] = {}
    cycles_timeline = next(query.sql for query in pages.QUERY_LIST if query.name == "cycles_timeline")
    for query in [*_ALL, *pages.QUERY_LIST, *datasets.QUERY_LIST, *scim.QUERY_LIST, *alert_history.QUERY_LIST,
                  *preflight.QUERY_LIST, *events.QUERY_LIST, *event.QUERY_LIST,
                  *timeseries.query_list(cycles_timeline)]:
        if query.name in merged:
            raise ValueError(f"query {query.name!r} is defined twice")
        merged[query.name] = query
    return merged


QUERIES: dict[str, Query] = _collect()
