"""The dashboard's one palette: the colour of every outcome, skip category, error code and SCIM status class.

Every chart takes its colours from here, so a thing has one colour everywhere:

- outcomes: success green, failure red, skipped grey, warning orange (Okabe-Ito's bluish green and vermillion,
  which people with red-green colour blindness still tell apart: they differ in lightness and in blue);
- skip categories: one fixed colour each (none red or green, the outcome colours), the same in every chart;
- error codes and other open-ended names (SCIM operations, apps): a stable hash of the name into a colour-blind-safe
  palette (Paul Tol's "muted" and Okabe-Ito), never the order of appearance, so a code keeps its colour whatever
  the filter shows with it. Two codes can share a colour (12 colours); the hover and the legend name them.
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


def color_map(names, kind: str = "hashed") -> dict[str, str]:
    """``{name: colour}`` for plotly.express's ``color_discrete_map``. ``kind``: ``status``, ``skip_category`` or
    ``hashed`` (error codes, operations, apps)."""
    pick = {"status": lambda n: STATUS.get(n, NEUTRAL), "skip_category": skip_category, "hashed": hashed}[kind]
    return {str(n): pick(n) for n in dict.fromkeys(names) if n is not None}
