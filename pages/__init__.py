"""Dashboard pages: one module per view, layout only; data comes from :mod:`queries`."""
