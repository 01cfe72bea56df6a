"""provlens: the ``provlens`` command (:mod:`provlens.cli`) of the installed package.

The code lives in ``ingest``, ``queries`` and ``simulator``; the dashboard's files (``app.py``, ``serve.py``,
``pages/``, ``static/``) install as ``provlens/dashboard/`` and the example SCIM mappings as ``provlens/examples/``
(pyproject.toml). The version is ``ingest.__version__``.
"""
