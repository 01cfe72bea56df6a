"""The filters every page and export share: time window, enterprise apps, job, identity type."""

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

    def params(self) -> dict:
        return {
            "since": self.since,
            "until": self.until,
            "sps": list(self.service_principal_ids) if self.service_principal_ids else None,
            "job": self.job_id or None,
            "types": list(self.identity_types) if self.identity_types else None,
        }


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """A point in time in provlens's one grammar (:mod:`ingest.timespec`): RFC 3339, a date, or ``2w``/``30d``/
    ``12h`` before now."""
    from ingest.timespec import parse_when

    return parse_when(value, now)
