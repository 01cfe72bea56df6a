"""Exit codes of ``python -m ingest`` (documented in the README; scheduled jobs alert on them)."""

OK = 0  # everything read was loaded (rejected lines, if any, are reported as warnings)
FAILED = 1  # nothing could be read or loaded, or an unexpected error
USAGE = 2  # bad command line or configuration
PARTIAL = 3  # some data landed, some did not (e.g. a source failed mid-way; a re-run finishes the work)
AUTH = 4  # authentication or authorisation failed (missing permission, licence, expired secret)
UNREACHABLE = 5  # the service could not be reached or kept failing/throttling past the retry budget
DATABASE = 6  # the database is locked for too long, foreign, damaged, from another provlens version, or full
STRICT = 7  # --strict and some input was rejected
LAKE = 8  # the ingest landed its data in the store, but the write-through copy to the lake (--lake) failed
