"""The Microsoft Graph source: ``python -m ingest graph`` (provisioning logs + synchronization job status + the
provisioning service's directory audit log).

Modules: :mod:`.auth` (credentials, static token, national clouds), :mod:`.pacing` (request budget and
``Retry-After``), :mod:`.client` (msgraph-sdk request adapter, raw pages, retries), :mod:`.pull` (time
slices, watermarks, loads; its feeds: the provisioning logs, the directory audit log), :mod:`.jobs` (job status
snapshots), :mod:`.command` (CLI arguments and the handler), :mod:`.log` (text or JSON event lines).
"""
