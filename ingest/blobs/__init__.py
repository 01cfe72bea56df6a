"""Azure Storage as a source: the append blobs Azure Monitor diagnostic settings write
(``insights-logs-provisioninglogs``), read incrementally into the one file-ingest path (``python -m ingest blobs``).

``client`` connects and reads ranges, ``cursor`` decides where each blob is read from, ``ingest`` runs a load.
"""
