"""SCIM server audit trail source (``python -m ingest scim``): scim-audit/1 JSON Lines or CSV, plain or .gz,
read incrementally per file, with an optional field mapping for a server's own log shape.

``parse`` turns one line into a typed request record (or a reason to reject it), ``mapping`` loads the
mapping file, ``filestate`` remembers how far each file was read, ``ingest`` is the command body.
"""
