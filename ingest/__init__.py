"""provlens ingest: sources (Graph, files, SCIM trail, job status), the DuckDB store and the CLI.

Run ``python -m ingest --help``. Only :mod:`ingest.store` writes to the database.
"""

__version__ = "0.3.0"
