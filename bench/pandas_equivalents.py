"""The same questions as some named queries, answered with pandas on a DataFrame already in memory.

Only the baseline for B4: each function returns what the named query of the same name returns.
"""

from __future__ import annotations

import pandas as pd

COLUMNS = ["id", "activity_time", "job_id", "cycle_id", "service_principal_id", "action", "status",
           "error_code", "http_status", "scim_type", "source_id", "skip_category", "skip_reason"]


def overview_kpis(df: pd.DataFrame) -> pd.DataFrame:
    status = df["status"]
    decided = status.isin(["success", "failure"]).sum()
    return pd.DataFrame([{
        "events": len(df), "success": (status == "success").sum(), "failure": (status == "failure").sum(),
        "skipped": (status == "skipped").sum(), "warning": (status == "warning").sum(),
        "identities": df["source_id"].nunique(),
        "failing_identities": df.loc[status == "failure", "source_id"].nunique(),
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


def cycles(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(["job_id", "cycle_id"])
    out = g.agg(service_principal_id=("service_principal_id", "first"), started_at=("activity_time", "min"),
                ended_at=("activity_time", "max"), events=("id", "size")).reset_index()
    counts = pd.crosstab([df["job_id"], df["cycle_id"]], df["status"]).reset_index()
    out = out.merge(counts, on=["job_id", "cycle_id"], how="left").sort_values(["job_id", "started_at"])
    out["gap_before_min"] = (out.groupby("job_id")["started_at"].diff().dt.total_seconds() / 60)
    out["duration_s"] = (out["ended_at"] - out["started_at"]).dt.total_seconds()
    return out


PANDAS = {f.__name__: f for f in (overview_kpis, events_per_day_by_status, top_error_codes, action_status_counts,
                                  failures_by_code_day, skips_by_category, cycles)}
