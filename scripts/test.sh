#!/usr/bin/env bash
# Set up and run everything CI runs: ruff, then the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
