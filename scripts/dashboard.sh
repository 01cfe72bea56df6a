#!/usr/bin/env bash
# Set up and run the dashboard. With no database configured it builds and shows the demo data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PROVLENS_DB=${PROVLENS_DB:-data/provlens.duckdb}
if [ ! -e "$PROVLENS_DB" ]; then
  .venv/bin/python -m ingest demo --db "$PROVLENS_DB"
elif [ "${PROVLENS_DB#md:}" = "$PROVLENS_DB" ]; then
  # a store written by an older provlens: the dashboard only reads, so bring it up to date first (a no-op if current)
  .venv/bin/python -m ingest migrate --db "$PROVLENS_DB"
fi
exec .venv/bin/streamlit run serve.py --server.address "${PROVLENS_ADDRESS:-127.0.0.1}" \
  --server.port "${PROVLENS_PORT:-8501}" --server.headless true --browser.gatherUsageStats false "$@"
