"""Why Entra skipped an object: the skip-reason table (one place), and the SQL that classifies a skipped event by it.

Each rule is a signal in the record (a scoping check that is ``False``, a reason code, or words in Entra's text)
and the category it means; the first rule that matches wins (the scoping checks are the most specific evidence,
``NotEffectivelyEntitled`` the least). Each category has one "what to do". A skip no rule matches is ``other``,
and its reason code (``skip_reason``) and text (``skip_detail``, ``error_reason``) are shown as they came; nothing
is called ``no_change`` unless the record says so (``RedundantExport``, "already has the values").

``ingest/event_sql.py`` builds ``skip_category`` from :func:`category_sql`; the Skipped page and the ``skipped``
export read the advice from :data:`ADVICE_VALUES` (through ``queries``).
"""

from __future__ import annotations

# category -> (label shown on the Skipped page, what to do)
CATEGORIES: dict[str, tuple[str, str]] = {
    "default_access": (
        "Default access",
        "Assign an app role other than Default Access in the enterprise app (Users and groups > Edit assignment), "
        "or provision all users if that is the intent."),
    "not_assigned": (
        "Not assigned",
        "Assign the user (or a group they are in) to the enterprise app, or scope provisioning to all users and "
        "groups."),
    "out_of_scope": (
        "Out of scope",
        "The scoping filter excluded the user: check the attribute it tests (department, country...) in Entra ID, "
        "or widen the filter in the attribute mappings."),
    "inactive": (
        "Inactive",
        "The user is disabled in Entra ID (accountEnabled = false); enable the account if they should have access."),
    "not_entitled": (
        "Not entitled",
        "Entra finds no valid assignment for the object although no scoping check failed: unassign the user (or "
        "group) from the enterprise app and assign it again (Microsoft: a broken assignment record); a disabled "
        "or future-dated source user is reported this way too."),
    "missing_attribute": (
        "Missing attribute",
        "The object was NOT created or updated: a required or matching attribute is missing or invalid in the "
        "source (the skip detail names it, e.g. name.familyName). Fill it in Entra ID or fix the attribute "
        "mapping; the next cycle provisions it."),
    "duplicate_match": (
        "Duplicate match",
        "More than one object matched on the matching attribute: remove the duplicate in the app (or in Entra ID), "
        "or change the matching attribute in the attribute mappings."),
    "no_change": (
        "No change",
        "Nothing to do: the target already matches the source."),
    "other": (
        "Other",
        "provlens does not know this reason: read Entra's reason (skip_reason, skip_detail, error_reason) or the "
        "event on the Identity page."),
}

# (kind, signal, category). kind: "scoping" = the scoping step's (or the skip step's) detail ``signal`` is "False";
# "code" = Entra's SkipReason or errorCode equals ``signal``; "text" = Entra's reason or skip-step text contains
# ``signal`` (case-insensitive). First match wins. Sources:
#  [S] the scoping step's details of real and documented records: /work/shared/reference/entra-provisioning-logs.md
#      (section 3), elastic/integrations packages/azure/data_stream/provisioning/_dev/test/pipeline/
#      test-provisioninglogs-raw.log (keys "Active in the source system", "Assigned to the application",
#      "User has the required role", "Scoping filter evaluation passed").
#  [P] provision on demand: MicrosoftDocs/entra-docs docs/identity/app-provisioning/provision-on-demand.md
#      (SkipReason NotEffectivelyEntitled with IsActive / Assigned to the application / IsInProvisioningScope).
#  [N] MicrosoftDocs/entra-docs docs/identity/app-provisioning/application-provisioning-config-problem-no-users-
#      provisioned.md ("not effectively entitled": unassign and reassign; Default Access role skipped).
#  [E] the error-code table of MicrosoftDocs/entra-docs docs/identity/monitoring-health/howto-analyze-provisioning-
#      logs.md (= MicrosoftDocs/azure-docs articles/active-directory/reports-monitoring/concept-provisioning-logs.md):
#      DuplicateTargetEntries, DuplicateSourceEntries, ImportSkipped, MandatoryFieldsMissing, MissingValues;
#      EntrySynchronizationSkipped is "out of scope OR already matching", so it decides nothing by itself.
#  [R] a real record: elastic/integrations test-provisioninglogs-raw.log (SkipReason AttributeValidationFailed,
#      "name.familyName is missing or invalid": the user was never created).
#  [X] RedundantExport: the export would write what the target already holds (entra-provisioning-logs.md
#      section 3; Microsoft Q&A threads about on-demand provisioning answering RedundantExport).
RULES: tuple[tuple[str, str, str], ...] = (
    ("scoping", "User has the required role", "default_access"),  # [S][N] Default Access only
    ("scoping", "Assigned to the application", "not_assigned"),  # [S][P]
    ("scoping", "Scoping filter evaluation passed", "out_of_scope"),  # [S]
    ("scoping", "IsInProvisioningScope", "out_of_scope"),  # [P]
    ("scoping", "Active in the source system", "inactive"),  # [S]
    ("scoping", "IsActive", "inactive"),  # [P]
    ("code", "AttributeValidationFailed", "missing_attribute"),  # [R]
    ("code", "ImportSkipped", "missing_attribute"),  # [E] the matching property is empty
    ("code", "MandatoryFieldsMissing", "missing_attribute"),  # [E]
    ("code", "MissingValues", "missing_attribute"),  # [E]
    ("code", "DuplicateTargetEntries", "duplicate_match"),  # [E]
    ("code", "DuplicateSourceEntries", "duplicate_match"),  # [E]
    ("code", "RedundantExport", "no_change"),  # [X]
    ("text", "required role", "default_access"),  # provision-on-demand wording [N]
    ("text", "default access", "default_access"),  # [N]
    ("text", "not assigned", "not_assigned"),  # [P] "This object is not assigned to the application."
    ("text", "scoping filter", "out_of_scope"),  # "does not match the scoping filters"
    ("text", "out of scope", "out_of_scope"),
    ("text", "not active", "inactive"),  # "This object is not active in the source system."
    ("text", "disabled", "inactive"),
    ("text", "is missing or invalid", "missing_attribute"),  # [R] the skip step's description
    ("text", "already has the values", "no_change"),  # the skip step's "the User in X already has the values"
    ("code", "NotEffectivelyEntitled", "not_entitled"),  # [N][P], when no scoping check or text says more
)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def category_sql(*, checks: list[str], codes: list[str], texts: list[str]) -> str:
    """A CASE over :data:`RULES` giving the skip category of one skipped event. ``checks``: expressions for JSON
    objects of scoping details (the first that has a key decides it); ``codes``: expressions for the reason codes
    (SkipReason, errorCode); ``texts``: expressions for Entra's texts. NULL inputs match nothing; no match is
    ``other``."""
    whens = []
    for kind, signal, category in RULES:
        if kind == "scoping":
            path = _literal("$." + json_key(signal))
            cond = f"lower(coalesce({', '.join(f'{c}->>{path}' for c in checks)})) = 'false'"
        elif kind == "code":
            cond = " OR ".join(f"{c} = {_literal(signal)}" for c in codes)
        else:
            cond = " OR ".join(f"{t} ILIKE {_literal('%' + signal + '%')}" for t in texts)
        whens.append(f"WHEN {cond} THEN {_literal(category)}")
    return "CASE " + " ".join(whens) + " ELSE 'other' END"


def json_key(name: str) -> str:
    """A JSON path member for a key that may hold spaces."""
    return '"' + name.replace('"', '\\"') + '"'


def advice_values() -> str:
    """The categories as a SQL VALUES relation ``(skip_category, label, what_to_do)``."""
    rows = ", ".join(f"({_literal(c)}, {_literal(label)}, {_literal(advice)})"
                     for c, (label, advice) in CATEGORIES.items())
    return f"(VALUES {rows}) AS skip_advice(skip_category, label, what_to_do)"


ADVICE_VALUES = advice_values()
