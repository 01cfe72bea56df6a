"""Preflight's questions (issue 26): the findings of each preflight run with what Entra logged since, the precision
of the predictions, the runs, and the work domains a run compares emails with.

A finding's status compares it with the events Entra logged for that identity (its source object id in the run's
app; an orphan by its SCIM id or userName) after the run started:

- ``confirmed``: the predicted failure or skip happened (:data:`EXPECTED`); for the kinds whose prediction is that
  Entra leaves the identity alone (``nested_group_only``, ``orphan``), a cycle of the app ran after the run and the
  identity was not provisioned. A ``duplicate_user_name`` is confirmed for every user of its collision when any of
  them got the conflict (the first one created succeeds: the prediction is about the group).
- ``wrong``: Entra did what the finding said it would not (:data:`CONTRADICTS`: the identity was created or updated
  successfully; for a duplicate, every colliding user was);
- ``not yet``: no event of the identity since the run (no cycle touched it).

Precision = confirmed / (confirmed + wrong): what is not yet decided counts neither way.
The plain reference of each query is in ``queries/reference.py`` (``PREFLIGHT_REFERENCES``).
"""

from __future__ import annotations

from queries.filters import scope_filter, time_filter
from queries.named import q

PREFLIGHT_COLUMNS = ("run_id", "kind", "user_principal_name", "user_name", "source_id", "detail",
                     "predicted_outcome", "recommended_action", "status")

_CONFLICT = ("(e.status = 'failure' AND (e.http_status = 409 OR e.scim_type = 'uniqueness' "
             "OR e.error_code LIKE '%EntryConflict' "
             "OR e.error_code IN ('Conflict', 'DuplicateTargetEntries', 'DuplicateSourceEntries')))")
_WRITTEN = "(e.status = 'success' AND e.action IN ('create', 'update'))"

# kind -> (an event that confirms it, an event that refutes it): SQL over an events row ``e``.
EXPECTED: dict[str, tuple[str, str]] = {
    "duplicate_user_name": (_CONFLICT, _WRITTEN),
    "target_conflict": (_CONFLICT, _WRITTEN),
    "missing_required": ("((e.status = 'skipped' AND e.skip_category = 'missing_attribute') OR "
                         "(e.status = 'failure' AND e.error_code IN ('MandatoryFieldsMissing', 'MissingValues', "
                         "'AttributeValidationFailed')))",
                         _WRITTEN),
    "non_work_email": ("(e.status = 'failure' AND e.http_status = 400)", _WRITTEN),
    "default_access_only": ("(e.status = 'skipped' AND e.skip_category IN ('default_access', 'not_entitled'))",
                            _WRITTEN),
    "nested_group_only": ("(e.status = 'skipped' AND e.skip_category IN ('not_assigned', 'not_entitled'))",
                          _WRITTEN),
    "disabled_but_active_in_target": ("((e.status = 'success' AND e.action = 'disable') OR (e.status = 'skipped' "
                                      "AND e.skip_category IN ('inactive', 'not_entitled')))",
                                      "(e.status = 'success' AND e.action = 'create')"),
    "orphan": ("false", "(e.status = 'success' AND e.action IN ('create', 'update', 'disable', 'delete'))"),
}
# Kinds whose prediction is "Entra leaves it alone": a cycle of the app after the run without a refuting event
# confirms them.
UNTOUCHED_KINDS = ("nested_group_only", "orphan")


def _case(which: int) -> str:
    return "CASE f.kind " + " ".join(f"WHEN '{k}' THEN {v[which]}" for k, v in EXPECTED.items()) + " ELSE false END"


# The identity's events in the run's app after the run: by source object id, or (an orphan) by SCIM id or userName.
SAME_IDENTITY = ("e.service_principal_id = f.service_principal_id AND e.activity_time > f.started_at AND "
                 "(e.source_id = f.source_id OR (f.source_id IS NULL AND (e.target_id = f.target_id "
                 "OR lower(e.user_name) = lower(f.user_name))))")

# Every finding of the runs in the period (the run's start) and app/job filter, $run (NULL: every run), with status.
FINDINGS_SQL = f"""
WITH f AS (
    SELECT f.*, r.started_at, r.service_principal_id, r.job_id
    FROM preflight_findings f JOIN preflight_runs r USING (run_id)
    WHERE {time_filter('r.started_at')} AND {scope_filter('r')}
      AND ($run::BIGINT IS NULL OR r.run_id = $run::BIGINT)),
touched AS (
    SELECT f.run_id, f.kind, f.identity, bool_or({_case(0)}) AS hit, bool_or({_case(1)}) AS refuted
    FROM f JOIN events e ON {SAME_IDENTITY}
    GROUP BY ALL),
cycled AS (
    SELECT DISTINCT f.run_id FROM f JOIN events e
        ON e.service_principal_id = f.service_principal_id AND e.activity_time > f.started_at),
judged AS (
    SELECT f.*, coalesce(t.hit, false) AS hit, coalesce(t.refuted, false) AS refuted,
           bool_or(coalesce(t.hit, false)) OVER (PARTITION BY f.run_id, f.kind, f.group_key) AS group_hit,
           bool_and(coalesce(t.refuted, false)) OVER (PARTITION BY f.run_id, f.kind, f.group_key) AS group_refuted,
           f.run_id IN (SELECT run_id FROM cycled) AS cycled
    FROM f LEFT JOIN touched t USING (run_id, kind, identity))
SELECT run_id, kind, user_principal_name, user_name, source_id, detail, predicted_outcome, recommended_action,
       CASE WHEN kind = 'duplicate_user_name'
                THEN CASE WHEN group_hit THEN 'confirmed' WHEN group_refuted THEN 'wrong' ELSE 'not yet' END
            WHEN hit THEN 'confirmed'
            WHEN refuted THEN 'wrong'
            WHEN kind IN {UNTOUCHED_KINDS} AND cycled THEN 'confirmed'
            ELSE 'not yet' END AS status
FROM judged
ORDER BY run_id, kind, identity
"""

# Per kind (and in all, kind NULL) over the same findings: how many, confirmed, not yet, wrong, and the precision.
PRECISION_SQL = f"""
SELECT kind, count(*) AS findings,
       count(*) FILTER (WHERE status = 'confirmed') AS confirmed,
       count(*) FILTER (WHERE status = 'not yet') AS not_yet,
       count(*) FILTER (WHERE status = 'wrong') AS wrong,
       CASE WHEN count(*) FILTER (WHERE status <> 'not yet') > 0
            THEN count(*) FILTER (WHERE status = 'confirmed') / count(*) FILTER (WHERE status <> 'not yet') END
           AS precision
FROM ({FINDINGS_SQL}) AS p
GROUP BY ROLLUP (kind)
ORDER BY kind NULLS LAST
"""

RUNS_SQL = f"""
SELECT run_id, started_at, service_principal_id, job_id, users, target_accounts, scim_url, findings, message
FROM preflight_runs r
WHERE {time_filter('r.started_at')} AND {scope_filter('r')}
ORDER BY started_at DESC, run_id DESC
"""

# The store's work domains (the violations' default: derived_work_domains), for a run's non_work_email check.
WORK_DOMAINS_SQL = "SELECT domain FROM derived_work_domains WHERE domain IS NOT NULL ORDER BY domain"

# The page's rows: the dataset plus the link to the identity's page (by UPN; an orphan by its userName).
PAGE_SQL = f"""
SELECT p.*, '/identity?q=' || url_encode(coalesce(p.user_principal_name, p.user_name, p.source_id, '')) AS identity_link
FROM ({FINDINGS_SQL}) AS p
"""

QUERY_LIST = [
    q("preflight", "Preflight findings per run with their predicted outcome, fix and status (confirmed, not yet, "
      "wrong) against what Entra logged since", FINDINGS_SQL),
    q("preflight_page", "Preflight findings with a link to each identity's page", PAGE_SQL),
    q("preflight_precision", "Preflight predictions per kind: confirmed, not yet, wrong, precision", PRECISION_SQL),
    q("preflight_runs", "Preflight runs, newest first", RUNS_SQL),
    q("preflight_work_domains", "The email domains counted as work domains (UPN domains of successes, email domains "
      "of successful creates)", WORK_DOMAINS_SQL),
]
