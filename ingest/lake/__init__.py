"""The provisioning lake (issue 28): the store's source tables as Delta Lake tables, Hive-partitioned by tenant and
UTC day, on a local path or Azure Blob / ADLS Gen2. :mod:`ingest.lake.layout` says what goes where; the copy and the
readers build on it.
"""
