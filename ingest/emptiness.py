"""Warn on silent emptiness (issue 22): a load whose events mostly lack a status, a service principal or an
identity was most likely read from a wrapper provlens does not know, and would show as neither failed nor skipped.

The warning is one line starting with :data:`MARK`; the run keeps it as the last line of its message, where the
freshness query (``queries/catalog.py``) finds it for the dashboard.
"""

from __future__ import annotations

MARK = "warning: "

# (what is missing, the Graph field it comes from), in the order of Store.run_event_gaps
FIELDS = (("status", "provisioningStatusInfo.status"), ("service principal", "servicePrincipal.id"),
          ("identity", "sourceIdentity.id / targetIdentity.id"))


def warning_for(total: int, *missing: int) -> str | None:
    """The warning for a load of ``total`` events of which ``missing[i]`` lack ``FIELDS[i]``; None when most
    events have every field."""
    empty = [(name, field, n) for (name, field), n in zip(FIELDS, missing) if total and n * 2 > total]
    if not empty:
        return None
    what = ", ".join(f"{name} ({field}): {n}" for name, field, n in empty)
    return (f"{MARK}most of the {total} event(s) loaded lack fields every Entra provisioning event has - {what}. "
            "The input is probably in a wrapper provlens does not know, and these events will count as neither "
            "failed nor skipped. Compare one record with a Graph provisioningObjectSummary (README: Loading your "
            "tenant's data) and re-export it in one of the shapes listed there.")
