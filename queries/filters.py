"""The filters every page and export share: time window, enterprise apps, job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

# Appended to a WHERE clause on a relation with activity_time, service_principal_id and job_id.
EVENT_FILTER = (
    "activity_time >= coalesce($since::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ) "
    "AND activity_time < coalesce($until::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ) "
    "AND ($sps::VARCHAR[] IS NULL OR list_contains($sps::VARCHAR[], service_principal_id)) "
    "AND ($job::VARCHAR IS NULL OR job_id = $job::VARCHAR)"
)


@dataclass(frozen=True)
class Filters:
    """``since`` inclusive, ``until`` exclusive, both UTC; ``None`` means open-ended / all."""

    since: datetime | None = None
    until: datetime | None = None
    service_principal_ids: tuple[str, ...] | None = None
    job_id: str | None = None

    def params(self) -> dict:
        return {
            "since": self.since,
            "until": self.until,
            "sps": list(self.service_principal_ids) if self.service_principal_ids else None,
            "job": self.job_id or None,
        }


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """ISO-8601 (naive means UTC) or a relative ``30d`` / ``12h`` / ``90m`` before now."""
    text = value.strip()
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if len(text) >= 2 and text[-1] in units and text[:-1].isdigit():
        now = now or datetime.now(timezone.utc)
        return now - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not a time: {value!r} (use ISO-8601 like 2026-11-01T00:00:00Z, or 30d, 12h)") from exc
    return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
