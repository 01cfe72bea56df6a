"""Links between the pages and to the Entra admin center (issue 23): the URL of an identity's timeline, an event's
details, a cycle's events, each keeping the current filters, and the ``column_config`` that shows them in a table.

Links are relative (``identity?q=...``), so they work under any base URL path; the data grid opens them in a new
tab. Page-local parameters (``q``, ``pick``, ``id``, ``cycle``) are not carried from one page to the next.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pandas as pd
import streamlit as st

from pages.columns import WIDTHS, display_only

# Parameters that belong to one page's own state, not to the shared filters.
PAGE_LOCAL = ("q", "pick", "id", "cycle", "change")
# The Events page (issue 23 item 3) filters by change id with this parameter.
CHANGE_PARAM = "change"

# The Entra admin center's enterprise-app blades, addressed by the service principal's object id and the app's
# application (client) id, with the tenant in the path so that a person signed in to several tenants lands in the
# right one. The forms are the ones public tools deep-link to (found with the search tool):
#   .../#view/Microsoft_AAD_IAM/ManagedAppMenuBlade/~/Users/objectId/{sp}/appId/{app}          (users and groups;
#       e.g. https://entra.microsoft.com/${tenantId}/#view/Microsoft_AAD_IAM/ManagedAppMenuBlade/~/Users/objectId/
#       ${servicePrincipalId}/appId/${appId} in a public SPFx setup script, and the Maester module's
#       Get-MtLinkServicePrincipal: #view/Microsoft_AAD_IAM/ManagedAppMenuBlade/~/Overview/objectId/{id}/appId/{appId})
#   .../#view/Microsoft_AAD_IAM/ManagedAppMenuBlade/~/ProvisioningManagement/appId/{app}/objectId/{sp}
#       (the Provisioning blade, where "Provision on demand" and the provisioning logs are; the same form in public
#       portal-link helpers; Microsoft documents no deep link to the provision-on-demand pane itself)
ADMIN_CENTER = "https://entra.microsoft.com"
_BLADE = "#view/Microsoft_AAD_IAM/ManagedAppMenuBlade/~/"


def filter_params() -> list[tuple[str, str]]:
    """The current shared filters (the sidebar wrote them into the URL this run), without page-local parameters."""
    return [(k, v) for k in st.query_params if k not in PAGE_LOCAL for v in st.query_params.get_all(k)]


def _url(page: str, own: list[tuple[str, str]], keep: list[tuple[str, str]] | None) -> str:
    keep = filter_params() if keep is None else keep
    mine = {k for k, _ in own}
    return f"{page}?{urlencode(own + [(k, v) for k, v in keep if k not in mine], quote_via=quote)}"


def identity_url(term: str | None, source_id: str | None, keep: list[tuple[str, str]] | None = None) -> str | None:
    """The Identity page with this identity searched (its UPN, else its object id) and picked."""
    if not source_id and not term:
        return None
    own = [("q", str(term or source_id))] + ([("pick", str(source_id))] if source_id else [])
    return _url("identity", own, keep)


def event_url(event_id: str | None, keep: list[tuple[str, str]] | None = None) -> str | None:
    return _url("event", [("id", str(event_id))], keep) if event_id else None


def cycle_url(cycle_id: str | None, keep: list[tuple[str, str]] | None = None) -> str | None:
    """The Sync cycles page with this cycle's events shown."""
    return _url("cycles", [("cycle", str(cycle_id))], keep) if cycle_id else None


def job_url(job_id: str | None, keep: list[tuple[str, str]] | None = None) -> str | None:
    """The Sync cycles page filtered to this job (the sidebar's job filter)."""
    return _url("cycles", [("job", str(job_id))], keep) if job_id else None


def change_url(change_id: str | None, keep: list[tuple[str, str]] | None = None) -> str | None:
    """The Events page filtered to this change id."""
    return _url("events", [(CHANGE_PARAM, str(change_id))], keep) if change_id else None


def admin_center_urls(tenant_id: str | None, sp_id: str | None, app_id: str | None) -> dict[str, str]:
    """The enterprise app's "Users and groups" and "Provisioning" blades in the Entra admin center ({} without the
    service principal's id)."""
    if not sp_id:
        return {}
    base = f"{ADMIN_CENTER}/{quote(tenant_id)}/" if tenant_id else f"{ADMIN_CENTER}/"
    ids = f"objectId/{quote(sp_id)}" + (f"/appId/{quote(app_id)}" if app_id else "")
    return {"Users and groups": f"{base}{_BLADE}Users/{ids}",
            "Provisioning (provision on demand)": f"{base}{_BLADE}ProvisioningManagement/{ids}"}


# --- Tables ---

IDENTITY_COLUMN = "identity"
EVENT_COLUMN = "event"


def with_identity_link(df: pd.DataFrame, *, upn: str = "source_upn", source_id: str = "source_id",
                       fallback: str | None = "user_name") -> pd.DataFrame:
    """``df`` with an ``identity`` column first: a link to the Identity page showing the UPN (else ``fallback``,
    else the object id)."""
    keep = filter_params()
    names = df[upn] if upn in df else pd.Series([None] * len(df), index=df.index)
    if fallback and fallback in df:
        names = names.where(names.notna() & (names != ""), df[fallback])
    links = [identity_url(n if isinstance(n, str) and n else None, s if isinstance(s, str) and s else None, keep)
             for n, s in zip(names, df[source_id] if source_id in df else [None] * len(df))]
    out = df.copy()
    out.insert(0, IDENTITY_COLUMN, links)
    return display_only(out, IDENTITY_COLUMN)


def with_event_link(df: pd.DataFrame, *, event_id: str = "id", where: pd.Series | None = None) -> pd.DataFrame:
    """``df`` with an ``event`` column: a link to the Event page (only on rows ``where`` is true, when given)."""
    keep = filter_params()
    ids = df[event_id]
    if where is not None:
        ids = ids.where(where)
    out = df.copy()
    out[EVENT_COLUMN] = [event_url(i, keep) if isinstance(i, str) and i else None for i in ids]
    return display_only(out, EVENT_COLUMN)


def identity_column(help_text: str = "Open this identity's timeline (UPN, or object id when it has none)") -> dict:
    return {IDENTITY_COLUMN: st.column_config.LinkColumn("Identity", display_text=r"[?&]q=([^&]*)",
                                                         help=help_text, width=WIDTHS["identity"])}


def event_column() -> dict:
    return {EVENT_COLUMN: st.column_config.LinkColumn(
        "Event", display_text="details", width=WIDTHS["link"],
        help="Open the event's details: steps, modified properties, error, SCIM requests, raw JSON")}


ADMIN_COLUMN = "fix_in_entra"


def with_admin_link(df: pd.DataFrame, *, tenant: str = "tenant_id", sp: str = "service_principal_id") -> pd.DataFrame:
    """``df`` with a ``fix_in_entra`` column: the app's "Users and groups" blade in the Entra admin center."""
    out = df.copy()
    tenants = df[tenant] if tenant in df else [None] * len(df)
    out[ADMIN_COLUMN] = [admin_center_urls(t if isinstance(t, str) and t else None, s if isinstance(s, str) else None,
                                           None).get("Users and groups") for t, s in zip(tenants, df[sp])]
    return display_only(out, ADMIN_COLUMN)


def admin_column() -> dict:
    return {ADMIN_COLUMN: st.column_config.LinkColumn(
        "Fix in Entra", display_text="open", width=WIDTHS["link"],
        help="The enterprise app's Users and groups in the Entra admin center (its Provisioning blade has "
             "Provision on demand): where an assignment or the identity's attributes are fixed")}
