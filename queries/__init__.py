"""provlens queries: every question the product answers, as named SQL with bound parameters.

Pages, exports, benchmarks and tests all call :func:`queries.db.run`; there is no second copy of a
query anywhere. ``python -m queries --help`` lists the export commands.
"""

# Load the catalog first, whichever queries module is imported: the catalog merges the topic modules'
# QUERY_LIST at import time, so a topic module imported on its own would otherwise be half-initialised.
import queries.catalog  # noqa: E402,F401
