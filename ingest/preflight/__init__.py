"""Preflight (issue 26): predict the next provisioning cycle's failures and skips from what Graph already holds."""
