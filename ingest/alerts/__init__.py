"""Alerts (issue 24): rules evaluated after each ingest run, their state in the store, and delivery through Apprise.

``model`` holds the shape every part shares; ``rules`` evaluates, ``state`` records fired/resolved/notified,
``delivery`` sends.
"""
