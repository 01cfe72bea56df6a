"""The dashboard's one palette: the colour of every outcome, skip category, error code and SCIM status class.

Every chart takes its colours from here, so a thing has one colour everywhere:

- outcomes: success green, failure red, skipped grey, warning orange (Okabe-Ito's bluish green and vermillion,
  which people with red-green colour blindness still tell apart: they differ in lightness and in blue);
- skip categories: one fixed colour each (none red or green, the outcome colours), the same in every chart;
- SCIM operations: fixed, one per verb (``user.create`` and ``group.create`` share it);
- error codes: fixed for the common ones, otherwise (and for other open-ended names such as apps) a stable hash of
  the name into a colour-blind-safe palette (Paul Tol's "muted" and Okabe-Ito), never the order of appearance, so a
  code keeps its colour whatever the filter shows with it. Two rare codes can share a colour (12 colours); the
  hover and the legend name them.
"""

from __future__ import annotations

import hashlib

SUCCESS = "#009E73"  # Okabe-Ito bluish green
FAILURE = "#D55E00"  # Okabe-Ito vermillion
SKIPPED = "#9E9E9E"  # grey: not an error
WARNING = "#E69F00"  # Okabe-Ito orange
NEUTRAL = "#BBBBBB"  # "(none)", "other", unknown
INFO = "#0072B2"  # Okabe-Ito blue: markers that are neither good nor bad (configuration changes, initial cycles)

STATUS = {"success": SUCCESS, "failure": FAILURE, "skipped": SKIPPED, "warning": WARNING}

# Outcomes of a whole sync cycle (pages/cycles.py) in the outcome colours.
CYCLE_OUTCOME = {"succeeded": SUCCESS, "with failures": FAILURE, "skips only": SKIPPED}

# SCIM answers by status class: 2xx green, 3xx blue, 4xx orange, 5xx red.
STATUS_CLASS = {"2xx": SUCCESS, "3xx": INFO, "4xx": WARNING, "5xx": FAILURE}

# A violation is open (red) or resolved (green).
VIOLATION_STATE = {"open": FAILURE, "resolved": SUCCESS}

# Colour-blind-safe categorical colours without the outcome green and red: Tol "muted" and Okabe-Ito.
CATEGORICAL = ["#332288", "#88CCEE", "#44AA99", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499",
               "#56B4E9", "#0072B2", "#CC79A7", "#6699CC"]

# Fixed, one per skip category of ingest/skip_reasons.py (the dashboard's labels); anything else is NEUTRAL.
SKIP_CATEGORY = {
    "default_access": "#332288",
    "not_assigned": "#88CCEE",
    "out_of_scope": "#44AA99",
    "inactive": "#999933",
    "not_entitled": "#DDCC77",
    "missing_attribute": "#CC6677",
    "duplicate_match": "#AA4499",
    "no_change": "#6699CC",
    "other": NEUTRAL,
}

# SCIM operations (ingest/scim/parse.py derive_operation), fixed: a group operation has its user operation's colour.
_OPERATION_VERB = {"search": "#332288", "get": "#88CCEE", "create": "#44AA99", "patch": "#999933",
                   "replace": "#DDCC77", "deactivate": "#882255", "reactivate": "#CC79A7", "delete": "#CC6677"}
OPERATION_OTHER = {"probe": "#6699CC", "discovery": "#AA4499", "bulk": "#56B4E9", "other": NEUTRAL}

# Error codes Entra logs most (Microsoft's SCIM error codes and the ones the demo shows) get a colour each, so the
# common ones never share one; any other code takes a stable hash of its name.
KNOWN_ERROR_CODE = {
    "SystemForCrossDomainIdentityManagementBadRequest": "#CC6677",
    "SystemForCrossDomainIdentityManagementServiceIncompatibleFiltering": "#CC79A7",
    "SystemForCrossDomainIdentityManagementCredentialValidationFailure": "#0072B2",
    "SystemForCrossDomainIdentityManagementUnauthorized": "#332288",
    "SystemForCrossDomainIdentityManagementServiceFailure": "#882255",
    "EntryConflict": "#999933",
    "TooManyRequests": "#AA4499",
    "Timeout": "#56B4E9",
    "DuplicateTargetEntries": "#DDCC77",
    "AzureActiveDirectoryCannotUpdateObjectsMasteredOnPremises": "#44AA99",
}

_NONE = {"", "(none)", "none", "other", "unknown"}


def hashed(name) -> str:
    """A colour for ``name`` that depends on the name alone (SHA-1, not Python's salted ``hash``)."""
    text = "" if name is None else str(name)
    if text.strip().lower() in _NONE:
        return NEUTRAL
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return CATEGORICAL[int.from_bytes(digest[:4], "big") % len(CATEGORICAL)]


def skip_category(name) -> str:
    return SKIP_CATEGORY.get(name, NEUTRAL)


def operation(name) -> str:
    """A SCIM operation's colour (``user.create`` and ``group.create`` share one)."""
    text = "" if name is None else str(name)
    if text in OPERATION_OTHER:
        return OPERATION_OTHER[text]
    return _OPERATION_VERB.get(text.rpartition(".")[2]) or hashed(text)


def error_code(name) -> str:
    """An error code's colour: its own for the common codes (an app prefix such as ``Leapsome`` in
    ``LeapsomeEntryConflict`` is ignored), a stable hash of the name for the rest."""
    text = "" if name is None else str(name)
    if text in KNOWN_ERROR_CODE:
        return KNOWN_ERROR_CODE[text]
    for code, colour in KNOWN_ERROR_CODE.items():
        if len(code) < len(text) and text.endswith(code) and code[0].isupper():
            return colour
    return hashed(text)


def color_map(names, kind: str = "hashed") -> dict[str, str]:
    """``{name: colour}`` for plotly.express's ``color_discrete_map``. ``kind``: ``status``, ``skip_category``,
    ``error_code``, ``operation`` or ``hashed`` (apps, anything else)."""
    pick = {"status": lambda n: STATUS.get(n, NEUTRAL), "skip_category": skip_category, "error_code": error_code,
            "operation": operation, "hashed": hashed}[kind]
    return {str(n): pick(n) for n in dict.fromkeys(names) if n is not None}
