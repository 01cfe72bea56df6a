"""The same questions as some named queries, answered with pandas on a DataFrame already in memory.

Only the baseline for B4: each function returns what the named query of the same name returns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ["id", "activity_time", "tenant_id", "job_id", "cycle_id", "change_id", "service_principal_id",
           "service_principal_name", "action", "status", "error_code", "error_category", "error_reason",
           "source_id", "source_name", "source_upn", "target_id", "user_name", "duration_ms", "http_status",
           "scim_type", "scim_detail", "next_retry_at", "recommended_action", "skip_category", "skip_reason",
           "email_domain", "import_kind", "source_type", "target_type"]


def overview_kpis(df: pd.DataFrame) -> pd.DataFrame:
    status = df["status"]
    decided = status.isin(["success", "failure"]).sum()
    return pd.DataFrame([{
        "events": len(df), "success": (status == "success").sum(), "failure": (status == "failure").sum(),
        "skipped": (status == "skipped").sum(), "warning": (status == "warning").sum(),
        "identities": df["source_id"].nunique(),
        "failed_identities": df.loc[status == "failure", "source_id"].nunique(),
        "failing_identities": recurring_failures(df, min_cycles=1)["source_id"].nunique(),
        "cycles": len(df[["job_id", "cycle_id"]].drop_duplicates()),
        "success_rate": (status == "success").sum() / decided if decided else None,
        "first_event": df["activity_time"].min(), "last_event": df["activity_time"].max()}])


def events_per_day_by_status(df: pd.DataFrame) -> pd.DataFrame:
    day = df["activity_time"].dt.floor("D")
    return (df.assign(day=day).groupby(["day", "status"]).size().rename("events").reset_index()
            .sort_values(["day", "status"]))


def top_error_codes(df: pd.DataFrame, limit: int = 10) -> pd.DataFrame:
    f = df[df["status"] == "failure"]
    g = f.groupby("error_code", dropna=False).agg(
        failures=("id", "size"), identities=("source_id", "nunique"), first_seen=("activity_time", "min"),
        last_seen=("activity_time", "max"), http_status=("http_status", "first"), scim_type=("scim_type", "first"))
    return g.reset_index().sort_values(["failures", "error_code"], ascending=[False, True]).head(limit)


def action_status_counts(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby(["action", "status"]).size().rename("events").reset_index()


def failures_by_code_day(df: pd.DataFrame) -> pd.DataFrame:
    f = df[df["status"] == "failure"]
    return (f.assign(day=f["activity_time"].dt.floor("D")).groupby(["day", "error_code"]).size()
            .rename("failures").reset_index())


def skips_by_category(df: pd.DataFrame) -> pd.DataFrame:
    s = df[df["status"] == "skipped"]
    return (s.groupby(["skip_category", "skip_reason"], dropna=False)
            .agg(events=("id", "size"), identities=("source_id", "nunique")).reset_index())


def _round_half_away(values: pd.Series, digits: int) -> pd.Series:
    """DuckDB's round(x, n): halves away from zero (pandas' round goes to the even neighbour)."""
    scale = 10.0 ** digits
    return np.sign(values) * np.floor(np.abs(values) * scale + 0.5) / scale


_CYCLE_COUNTS = ["created", "updated", "disabled", "deleted", "other", "success", "failure", "skipped", "warning"]


def cycles(df: pd.DataFrame) -> pd.DataFrame:
    """The ``cycles`` export dataset, all time: one row per (job_id, cycle_id), initial/incremental, gap."""
    action, status = df["action"], df["status"]
    work = pd.DataFrame({"job_id": df["job_id"], "cycle_id": df["cycle_id"],
                         "service_principal_id": df["service_principal_id"], "t": df["activity_time"],
                         "created": action.eq("create"), "updated": action.eq("update"),
                         "disabled": action.eq("disable"), "deleted": action.eq("delete"),
                         "success": status.eq("success"), "failure": status.eq("failure"),
                         "skipped": status.eq("skipped"), "warning": status.eq("warning"),
                         "full_import": df["import_kind"].eq("full")})
    work["other"] = ~(work["created"] | work["updated"] | work["disabled"] | work["deleted"])
    out = (work.groupby(["job_id", "cycle_id"], dropna=False, sort=False)
           .agg(service_principal_id=("service_principal_id", "first"), started_at=("t", "min"),
                ended_at=("t", "max"), events=("t", "size"), full_import=("full_import", "any"),
                **{c: (c, "sum") for c in _CYCLE_COUNTS})
           .reset_index())
    out = out.sort_values(["job_id", "started_at", "cycle_id"], kind="stable")
    first = out.groupby("job_id", dropna=False).cumcount() == 0
    previous = out.groupby("job_id", dropna=False)["started_at"].shift()
    out["kind"] = np.where(first | out["full_import"], "initial", "incremental")
    out["duration_s"] = _round_half_away((out["ended_at"] - out["started_at"]).dt.total_seconds(), 3)
    out["gap_before_min"] = _round_half_away((out["started_at"] - previous).dt.total_seconds() / 60.0, 1)
    columns = ["job_id", "cycle_id", "service_principal_id", "started_at", "ended_at", "duration_s", "events",
               *_CYCLE_COUNTS, "kind", "gap_before_min"]
    return out.sort_values(["started_at", "job_id", "cycle_id"], kind="stable")[columns].reset_index(drop=True)


def _with_app_names(df: pd.DataFrame, cycles: pd.DataFrame) -> pd.DataFrame:
    names = df.groupby("service_principal_id")["service_principal_name"].first().rename("service_principal_name")
    return cycles.merge(names, how="left", left_on="service_principal_id", right_index=True)


def cycles_timeline(df: pd.DataFrame) -> pd.DataFrame:
    out = _with_app_names(df, cycles(df))
    return out.sort_values(["started_at", "cycle_id"], kind="stable").reset_index(drop=True)


def last_cycle(df: pd.DataFrame) -> pd.DataFrame:
    c = _with_app_names(df, cycles(df))
    c = c.sort_values("started_at", ascending=False, kind="stable").drop_duplicates("job_id")
    c["outcome"] = np.where((c["failure"] > 0) & (c["success"] == 0), "failed",
                            np.where(c["failure"] > 0, "partly failed", "succeeded"))
    columns = ["job_id", "service_principal_id", "service_principal_name", "cycle_id", "kind", "started_at",
               "ended_at", "events", "success", "failure", "skipped", "outcome"]
    return c.sort_values(["service_principal_name", "job_id"], kind="stable")[columns].reset_index(drop=True)


# ----------------------------------------------------------------------------- the heaviest page queries
# Twins of ``failures``, ``top_errors``, ``recurring_failures``, ``skip_identities`` and ``cycle_events``
# (all time, no app/job filter): the same rows and columns as the named queries
# (tests/test_bench_pandas_twins.py checks that on the demo database).
_IDENTITY = ["service_principal_id", "job_id", "source_id"]
FAILURE_OUTPUT = ["id", "activity_time", "tenant_id", "job_id", "cycle_id", "change_id", "service_principal_id",
                  "service_principal_name", "action", "status", "error_code", "error_category", "error_reason",
                  "source_id", "source_name", "source_upn", "target_id", "user_name", "duration_ms", "source_type",
                  "target_type", "http_status", "scim_type", "scim_detail", "next_retry_at", "consecutive_cycles",
                  "recommended_action"]


def _contains(series: pd.Series, word: str) -> pd.Series:
    return series.fillna("").str.contains(word, case=False, regex=False)


def _recommended_action(f: pd.DataFrame) -> pd.Series:
    """queries.datasets.RECOMMENDED_ACTION_SQL: Microsoft's advice, else ours (first match wins)."""
    code = f["error_code"].fillna("")
    http = f["http_status"]
    conditions = [
        (http == 409) | (f["scim_type"] == "uniqueness") | code.str.endswith("EntryConflict")
        | code.isin(["Conflict", "DuplicateTargetEntries", "DuplicateSourceEntries"]),
        (http == 400) & (_contains(f["scim_detail"], "email") | _contains(f["error_reason"], "email")),
        http == 400,
        (http == 401) | code.str.endswith("CredentialValidationFailure") | (code == "Unauthorized"),
        (http == 403) | (code == "InsufficientRights"),
        (http == 429) | (code == "TooManyRequests"),
        (http >= 500) | code.isin(["Timeout", "InternalServerError", "InternalError", "WebExceptionProtocolError"]),
    ]
    advice = [
        "Fix the duplicate userName: another account in the app already uses this userName "
        "(case-insensitively). Rename or remove that account, or change the source UPN or the "
        "attribute mapping; Entra retries in a later cycle.",
        "The app rejected the email address: give the user a work email in an allowed domain "
        "(mail attribute in Entra ID or the mapping); Entra retries in a later cycle.",
        "The app rejected a value: check the value named in the SCIM detail and the attribute mappings.",
        "Renew the SCIM token: enterprise app > Provisioning > Admin credentials, paste a new "
        "secret token, Test Connection; the job leaves quarantine at its next attempt.",
        "The app refused the request: check the token's permissions in the app.",
        "The app throttled Entra: retried automatically in a later cycle; act only if it persists.",
        "Temporary error in the app: retried automatically in a later cycle; contact the app vendor "
        "if it persists.",
    ]
    ours = np.select([c.fillna(False).to_numpy(dtype=bool) for c in conditions], advice, default=None)
    given = f["recommended_action"].where(f["recommended_action"].fillna("") != "")
    return given.fillna(pd.Series(ours, index=f.index, dtype=object))


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Every failed event with its run of consecutive failed cycles (reset by a success of the identity)."""
    outcomes = df[df["status"].isin(["success", "failure"])].sort_values(["activity_time", "id"], kind="stable")
    run_no = (outcomes["status"] == "success").astype(int).groupby(
        [outcomes[k] for k in _IDENTITY], dropna=False).cumsum()
    f = outcomes[outcomes["status"] == "failure"].assign(run_no=run_no)
    first_of_cycle = ~f.duplicated([*_IDENTITY, "run_no", "cycle_id"]) & f["cycle_id"].notna()
    f = f.assign(consecutive_cycles=first_of_cycle.astype("int64").groupby(
        [f[k] for k in (*_IDENTITY, "run_no")], dropna=False).cumsum())
    f["recommended_action"] = _recommended_action(f)
    return f[FAILURE_OUTPUT].reset_index(drop=True)


def _mode(series: pd.Series):
    counts = series.dropna().value_counts()
    return counts.index[0] if len(counts) else None


def top_errors(df: pd.DataFrame) -> pd.DataFrame:
    f = failures(df)
    g = f.groupby("error_code", dropna=False)
    out = g.agg(failures=("id", "size"), identities=("source_id", "nunique"), first_seen=("activity_time", "min"),
                last_seen=("activity_time", "max"), http_status=("http_status", _mode),
                scim_type=("scim_type", _mode), scim_detail=("scim_detail", _mode),
                next_retry_at=("next_retry_at", "max"), recommended_action=("recommended_action", _mode))
    return out.reset_index().sort_values(["failures", "error_code"], ascending=[False, True]).reset_index(drop=True)


def recurring_failures(df: pd.DataFrame, min_cycles: int = 2) -> pd.DataFrame:
    """The recurring-failures dataset (all time): each identity's failures after its latest success, when its
    latest outcome is a failure and that run spans 2+ cycles."""
    f = failures(df)
    f = f[f["source_id"].notna()]
    last_success = (df[df["status"] == "success"].groupby(_IDENTITY, dropna=False)["activity_time"].max()
                    .rename("last_success").reset_index())
    f = f.merge(last_success, on=_IDENTITY, how="left")
    f = f[f["last_success"].isna() | (f["activity_time"] > f["last_success"])]
    f = f.sort_values(["activity_time", "id"], kind="stable")
    g = f.groupby(_IDENTITY, dropna=False)
    out = g.agg(source_upn=("source_upn", "last"), user_name=("user_name", "last"),
                consecutive_cycles=("consecutive_cycles", "max"), failing_since=("activity_time", "min"),
                last_failure=("activity_time", "max"), error_code=("error_code", "last"),
                recommended_action=("recommended_action", "last")).reset_index()
    out = out[out["consecutive_cycles"] >= min_cycles]
    columns = ["service_principal_id", "job_id", "source_id", "source_upn", "user_name", "consecutive_cycles",
               "failing_since", "last_failure", "error_code", "recommended_action"]
    return out.sort_values(["consecutive_cycles", "last_failure", *_IDENTITY],
                           ascending=[False, False, True, True, True])[columns].reset_index(drop=True)


def skip_identities(df: pd.DataFrame) -> pd.DataFrame:
    s = df[df["status"] == "skipped"].assign(skip_category=lambda x: x["skip_category"].fillna("other"))
    s = s.sort_values("activity_time", kind="stable")
    g = s.groupby(["source_id", "service_principal_id", "skip_category"], dropna=False)
    out = g.agg(service_principal_name=("service_principal_name", "first"), source_upn=("source_upn", "last"),
                skip_reason=("skip_reason", "last"), first_seen=("activity_time", "min"),
                last_seen=("activity_time", "max"), cycles=("cycle_id", "nunique"), skips=("id", "size")).reset_index()
    columns = ["source_id", "service_principal_id", "service_principal_name", "source_upn", "skip_category",
               "skip_reason", "first_seen", "last_seen", "cycles", "skips"]
    return out.sort_values(["skip_category", "service_principal_name", "source_upn", "source_id"])[
        columns].reset_index(drop=True)


def cycle_events(df: pd.DataFrame, cycle_id: str | None = None) -> pd.DataFrame:
    """The events of one cycle; by default the cycle with the most events (what the benchmark asks for)."""
    if cycle_id is None:
        cycle_id = df["cycle_id"].value_counts().index[0]
    c = df[df["cycle_id"] == cycle_id].sort_values(["activity_time", "id"])
    return c[["activity_time", "action", "status", "source_upn", "user_name", "error_code", "scim_type",
              "skip_category", "target_id", "source_id", "id"]].reset_index(drop=True)


# The bounded versions the pages run (queries/pages.py): the same rows, ordered and cut like the SQL.
def failures_recent(df: pd.DataFrame, limit: int = 500) -> pd.DataFrame:
    return failures(df).sort_values(["activity_time", "id"], ascending=False).head(limit).reset_index(drop=True)


def cycle_events_first(df: pd.DataFrame, cycle_id: str | None = None, limit: int = 1000) -> pd.DataFrame:
    return cycle_events(df, cycle_id).head(limit)


def recurring_failures_top(df: pd.DataFrame, limit: int = 500) -> pd.DataFrame:
    return recurring_failures(df).head(limit).reset_index(drop=True)


def skip_identities_top(df: pd.DataFrame, limit: int = 500) -> pd.DataFrame:
    s = skip_identities(df)
    s["category_identities"] = s.groupby("skip_category")["source_id"].transform("size")
    s = s.sort_values(["skip_category", "cycles", "last_seen", "source_id", "service_principal_id"],
                      ascending=[True, False, False, True, True])
    return s.groupby("skip_category", sort=False).head(limit).reset_index(drop=True)


def _next_success(df: pd.DataFrame, f: pd.DataFrame) -> pd.Series:
    """Per failure: the identity's first success strictly after it (NULL app or identity: never)."""
    ok = df[(df["status"] == "success") & df["source_id"].notna() & df["service_principal_id"].notna()]
    ok = ok[[*_IDENTITY, "activity_time"]].rename(columns={"activity_time": "next_success_at"})
    ok = ok.sort_values("next_success_at", kind="stable")
    left = f[[*_IDENTITY, "activity_time"]].reset_index().sort_values("activity_time", kind="stable")
    keyed = left.dropna(subset=["source_id", "service_principal_id"])
    keyed = keyed.assign(job_id=keyed["job_id"].fillna("\0"))
    merged = pd.merge_asof(keyed, ok.assign(job_id=ok["job_id"].fillna("\0")), left_on="activity_time",
                           right_on="next_success_at", by=_IDENTITY, direction="forward", allow_exact_matches=False)
    return pd.Series(merged["next_success_at"].to_numpy(), index=merged["index"]).reindex(f.index)


def _work_domains(df: pd.DataFrame) -> set[str]:
    ok = df[df["status"] == "success"]
    upn = ok["source_upn"].dropna()
    upn = upn[upn.str.contains("@", regex=False)]
    creates = ok.loc[ok["action"] == "create", "email_domain"].dropna()
    return set(upn.str.rsplit("@", n=1).str[-1].str.lower()) | set(creates)


def _violation_failures(df: pd.DataFrame) -> pd.DataFrame:
    """Failures with a violation kind (default allowed domains), oldest first."""
    f = failures(df).assign(email_domain=df.loc[df["status"] == "failure", "email_domain"].to_numpy())
    f["next_success_at"] = _next_success(df, f)
    code, http, scim = f["error_code"].fillna(""), f["http_status"], f["scim_type"]
    rejected = ((http == 400) & (scim == "invalidValue")).fillna(False)
    non_work = (f["email_domain"].notna() & ~f["email_domain"].isin(_work_domains(df))) | _contains(
        f["scim_detail"], "email")
    duplicate = ((http == 409) | (scim == "uniqueness")).fillna(False) | code.str.endswith("Conflict") | (
        code == "DuplicateTargetEntries")
    group = f["source_type"].fillna(f["target_type"]).fillna("").str.lower().str.endswith("group")
    f["kind"] = np.select([(duplicate & group).to_numpy(bool), duplicate.to_numpy(bool),
                           (rejected & non_work).to_numpy(bool), rejected.to_numpy(bool)],
                          ["duplicate_group_name", "duplicate_user_name", "non_work_email", "other_rejected_value"],
                          default="")
    return f[f["kind"] != ""].sort_values("activity_time", kind="stable")


def _resolved(groups: pd.DataFrame) -> pd.DataFrame:
    return groups.dropna(subset=["next_success_at"]).groupby(
        ["kind", "service_principal_id", "source_id"], dropna=False)["next_success_at"].min().rename(
        "resolved_at").reset_index()


def violations_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Violations (queries.datasets, default allowed domains) counted by kind and state."""
    f = _violation_failures(df)
    groups = f.groupby(["kind", *_IDENTITY], dropna=False)["next_success_at"].last().reset_index()
    groups = groups.merge(_resolved(groups), on=["kind", "service_principal_id", "source_id"], how="left")
    groups["state"] = np.where(groups["resolved_at"].notna(), "resolved", "open")
    return (groups.groupby(["kind", "state"]).size().rename("violations").reset_index()
            .sort_values(["kind", "state"]).reset_index(drop=True))


def violations(df: pd.DataFrame, scim: pd.DataFrame) -> pd.DataFrame:
    """queries.datasets violations with SCIM evidence: a 409 (duplicate) or 400 (rejected value) for the same
    externalId or userName within 15 minutes of the group's failures."""
    f = _violation_failures(df)
    g = f.groupby(["kind", *_IDENTITY], dropna=False)
    groups = pd.DataFrame({"user_name": g["user_name"].last(), "email_domain": g["email_domain"].last(),
                           "first_seen": g["activity_time"].min(), "last_seen": g["activity_time"].max(),
                           "occurrences": g.size(), "next_success_at": g["next_success_at"].last(),
                           "source_name": g["source_name"].last(), "source_type": g["source_type"].last(),
                           "target_type": g["target_type"].last()}).reset_index()
    keys = ["kind", "service_principal_id", "source_id"]
    groups = groups.merge(_resolved(groups), on=keys, how="left")
    groups["state"] = np.where(groups["resolved_at"].notna(), "resolved", "open")
    errors = scim.loc[scim["status"].isin([400, 409]), ["ts", "status", "external_id", "user_name"]]
    errors = errors.assign(user_name_lower=errors["user_name"].str.lower())
    g2 = groups.reset_index(names="row")
    by_id = g2.merge(errors, left_on="source_id", right_on="external_id")
    by_name = g2.assign(user_name_lower=g2["user_name"].str.lower()).merge(errors, on="user_name_lower",
                                                                         suffixes=("", "_scim"))
    cand = pd.concat([by_id[["row", "kind", "first_seen", "last_seen", "ts", "status"]],
                      by_name[["row", "kind", "first_seen", "last_seen", "ts", "status"]]])
    window = pd.Timedelta(minutes=15)
    hit = cand[(cand["ts"] >= cand["first_seen"] - window) & (cand["ts"] <= cand["last_seen"] + window)
               & (cand["status"] == np.where(cand["kind"].str.startswith("duplicate"), 409, 400))]
    seen = groups[keys].iloc[hit["row"].unique()].drop_duplicates().assign(seen=True)
    groups = groups.merge(seen, on=keys, how="left")
    groups["evidence"] = np.where(groups["seen"].fillna(False).astype(bool), "both", "entra")
    out = groups.sort_values(["first_seen", "kind", "service_principal_id", "source_id"], kind="stable")
    return out[["kind", "user_name", "email_domain", "source_id", "service_principal_id", "first_seen", "last_seen",
                "occurrences", "state", "resolved_at", "evidence", "source_name", "source_type",
                "target_type"]].reset_index(drop=True)


def _distinct_list(series: pd.Series):
    values = sorted(series.dropna().unique())
    return ", ".join(values) if values else None


def identity_search(df: pd.DataFrame, term: str) -> pd.DataFrame:
    """queries.pages identity_search (string_agg's order is DuckDB's choice; here: sorted)."""
    low = term.lower()
    hit = ((df["source_id"] == term) | (df["target_id"] == term)
           | df["source_upn"].str.lower().str.contains(low, regex=False, na=False)
           | df["user_name"].str.lower().str.contains(low, regex=False, na=False))
    f = df[hit.fillna(False).astype(bool)].sort_values("activity_time", kind="stable")
    g = f.groupby("source_id", dropna=False, sort=False)
    out = pd.DataFrame({"source_upn": g["source_upn"].last(), "source_name": g["source_name"].last(),
                        "user_names": g["user_name"].agg(_distinct_list),
                        "target_ids": g["target_id"].agg(_distinct_list), "events": g.size(),
                        "first_seen": g["activity_time"].min(), "last_seen": g["activity_time"].max()}).reset_index()
    return out.sort_values(["last_seen", "source_id"], ascending=[False, True]).head(50).reset_index(drop=True)


def identity_events(df: pd.DataFrame, source_id: str) -> pd.DataFrame:
    """queries.pages identity_events (all time, no app/job filter): one identity's events, oldest first."""
    e = df[df["source_id"] == source_id].sort_values(["activity_time", "id"], kind="stable")
    return pd.DataFrame({"time": e["activity_time"], "source": "entra", "app": e["service_principal_name"],
                         "action": e["action"], "status": e["status"],
                         "detail": e["error_code"].fillna(e["skip_category"]), "user_name": e["user_name"],
                         "target_id": e["target_id"], "cycle_id": e["cycle_id"], "ref": e["id"]}
                        ).reset_index(drop=True)


# The SCIM side for the SCIM twins: requests and the correlation's request -> class/event rows.
SCIM_COLUMNS = ["request_id", "ts", "method", "path", "status", "operation", "user_name", "user_name_lower",
                "resource_id", "external_id", "scim_type", "error_detail", "tenant", "is_probe", "duration_ms",
                "credential_id", "user_agent", "client_ip"]
CORRELATION_COLUMNS = ["request_id", "match_class", "detail", "event_id"]


def scim_identity_timeline(df: pd.DataFrame, scim: pd.DataFrame, corr: pd.DataFrame, identity: str) -> pd.DataFrame:
    r = scim[(scim["user_name_lower"] == identity.lower()) | (scim["resource_id"] == identity)
             | (scim["external_id"] == identity)]
    out = r.merge(corr[corr["request_id"].notna()], on="request_id", how="left")
    out = out.sort_values(["ts", "request_id"], kind="stable")
    return out[["ts", "request_id", "method", "path", "status", "operation", "user_name", "resource_id",
                "external_id", "scim_type", "error_detail", "match_class", "detail", "event_id"]].reset_index(drop=True)


def identity_scim_requests(df: pd.DataFrame, scim: pd.DataFrame, source_id: str) -> pd.DataFrame:
    ev = df[df["source_id"] == source_id]
    targets = set(ev["target_id"].dropna())
    names = set(ev["user_name"].dropna().str.lower())
    r = scim[((scim["external_id"] == source_id) | scim["resource_id"].isin(targets)
              | scim["user_name_lower"].isin(names)) & ~scim["is_probe"].fillna(False).astype(bool)]
    status_text = r["status"].astype("Int64").astype("string")
    detail = (r["method"] + " " + status_text + (" " + r["scim_type"]).fillna("")
              + (": " + r["error_detail"]).fillna(""))
    out = pd.DataFrame({"time": r["ts"], "source": "scim", "app": r["tenant"], "action": r["operation"],
                        "status": np.where(r["status"] >= 400, "failure", "success"), "detail": detail,
                        "user_name": r["user_name"], "target_id": r["resource_id"], "cycle_id": None,
                        "ref": r["request_id"]})
    return out.sort_values(["time", "ref"], kind="stable").reset_index(drop=True)


def scim_kpis(df: pd.DataFrame, scim: pd.DataFrame) -> pd.DataFrame:
    """The SCIM page's headline numbers, all time (p95: quantile_cont of the request durations)."""
    status = scim["status"]
    clients = scim["credential_id"].fillna(scim["user_agent"]).fillna(scim["client_ip"])
    return pd.DataFrame({
        "requests": [len(scim)], "errors": [int((status >= 400).sum())],
        "auth_failures": [int(status.isin([401, 403]).sum())],
        "probes": [int(scim["is_probe"].fillna(False).astype(bool).sum())],
        "throttled": [int((status == 429).sum())],
        "p95_ms": [scim["duration_ms"].dropna().astype("float64").quantile(0.95)],
        "clients": [clients.nunique()], "first_request": [scim["ts"].min()], "last_request": [scim["ts"].max()]})


def scim_latency(df: pd.DataFrame, scim: pd.DataFrame) -> pd.DataFrame:
    """SCIM server time per operation, all time: requests with a duration, p50/p95/p99 (quantile_cont), max."""
    timed = scim.loc[scim["duration_ms"].notna(), ["operation", "duration_ms"]]
    durations = timed["duration_ms"].astype("float64").groupby(timed["operation"], dropna=False)
    out = pd.DataFrame({"requests": durations.size(), "p50_ms": durations.quantile(0.5),
                        "p95_ms": durations.quantile(0.95), "p99_ms": durations.quantile(0.99),
                        "max_ms": durations.max()}).rename_axis("operation").reset_index()
    return out.sort_values(["requests", "operation"], ascending=[False, True], kind="stable").reset_index(drop=True)


def load_frames(db: str) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """B4's pandas side's data, as the benchmark loads it (not timed: "already in memory"): the events, and
    {"scim": requests, "corr": the correlation's request rows} for the SCIM twins."""
    from queries.db import read_connection

    with read_connection(db) as con:
        df = con.execute(f"SELECT {', '.join(COLUMNS)} FROM events").df()
        scim = con.execute(f"SELECT {', '.join(SCIM_COLUMNS)} FROM scim_requests").df()
        corr = con.execute(f"SELECT {', '.join(CORRELATION_COLUMNS)} FROM correlation "
                           "WHERE request_id IS NOT NULL").df()
    df["activity_time"] = pd.to_datetime(df["activity_time"], utc=True)
    scim["ts"] = pd.to_datetime(scim["ts"], utc=True)
    return df, {"scim": scim, "corr": corr}


PANDAS = {"recurring-failures": recurring_failures} | {
    f.__name__: f for f in (overview_kpis, events_per_day_by_status, top_error_codes, action_status_counts,
                                  failures_by_code_day, skips_by_category, cycles, failures, top_errors,
                                  skip_identities, cycle_events, failures_recent,
                                  cycle_events_first, recurring_failures_top, skip_identities_top,
                                  violations_summary, violations, identity_search, identity_events,
                                  scim_identity_timeline, identity_scim_requests, cycles_timeline, last_cycle,
                                  scim_kpis, scim_latency)}
