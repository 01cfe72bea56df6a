"""Synchronization job status: ``GET /servicePrincipals/{id}/synchronization/jobs`` as snapshots.

Each run captures every job of each service principal once; the store keeps the history
(``sync_job_snapshots``: schedule, status code, quarantine, last executions, steady-state times).
"""

from __future__ import annotations

from datetime import datetime, timezone

from ingest.graph.client import GraphSession

MAX_JOB_PAGES = 20


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


async def fetch_job_snapshots(session: GraphSession, service_principal_id: str,
                              captured_at: datetime | None = None) -> list[dict]:
    """Snapshots ``{"capturedAt", "servicePrincipalId", "job"}`` of every job of one service principal."""
    captured = _iso(captured_at or datetime.now(timezone.utc))
    what = f"synchronization jobs of service principal {service_principal_id}"
    request = session.jobs_request(service_principal_id)
    snapshots: list[dict] = []
    for _ in range(MAX_JOB_PAGES):
        doc = await session.get_json(request, what)
        for job in doc.get("value") or []:
            if isinstance(job, dict) and isinstance(job.get("id"), str):
                snapshots.append({"capturedAt": captured, "servicePrincipalId": service_principal_id, "job": job})
        next_link = doc.get("@odata.nextLink")
        if not isinstance(next_link, str) or not next_link:
            break
        request = session.jobs_next_request(service_principal_id, next_link)
    return snapshots
