"""provlens queries: every question the product answers, as named SQL with bound parameters.

Pages, exports, benchmarks and tests all call :func:`queries.db.run`; there is no second copy of a
query anywhere. ``python -m queries --help`` lists the export commands.
"""
