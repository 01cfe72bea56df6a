"""The Events page's queries: the newest events under every filter (the shared ones and the event filters of
:mod:`queries.filters`), their true total, and the values the event filters can take. The events export dataset
(``events`` in :mod:`queries.catalog`) applies the same filters, so the page's CSV is the filtered set."""

from __future__ import annotations

from queries.filters import DETAIL_FILTER
from queries.named import q

# How many of the newest events the Events page shows (the CSV holds them all).
PAGE_ROWS = 500

# The rows the Events page shows, after ``event``: the link to the Event page (/event?id=...).
EVENT_PAGE_COLUMNS = (
    "activity_time", "status", "action", "source_upn", "user_name", "source_type", "error_code", "skip_category",
    "service_principal_name", "cycle_id", "change_id", "job_id", "source_id", "target_id", "id",
)

QUERY_LIST = [
    q("events_recent", "The newest $limit events under every filter (the Events page), newest first", f"""
        SELECT '/event?id=' || url_encode(id) AS event, {', '.join(EVENT_PAGE_COLUMNS)}
        FROM events WHERE {{EVENT_FILTER}} AND {DETAIL_FILTER}
        ORDER BY activity_time DESC, id DESC LIMIT $limit"""),
    q("events_count", "How many events every filter keeps (the Events page's true total)", f"""
        SELECT count(*) AS events FROM events WHERE {{EVENT_FILTER}} AND {DETAIL_FILTER}"""),
    q("event_vocabulary", "The values the event filters can take: every status, action, error code and skip "
      "category in the database (kind, value, events)", """
        SELECT kind, value, sum(events)::BIGINT AS events FROM (
            SELECT 'status' AS kind, status AS value, events FROM derived_event_hours
            UNION ALL SELECT 'action', action, events FROM derived_event_hours
            UNION ALL SELECT 'error', error_code, events FROM derived_event_hours
            UNION ALL SELECT 'skip', skip_category, events FROM derived_event_hours)
        WHERE value IS NOT NULL GROUP BY ALL ORDER BY kind, events DESC, value"""),
    q("cycle_known", "Whether a cycle id ($cycle) occurs in the database", """
        SELECT count(*) > 0 AS known FROM derived_cycles WHERE cycle_id = $cycle::VARCHAR"""),
]
