#!/usr/bin/env bash
# Set up and run the dashboard. With no database configured it builds and shows the demo data; with PROVLENS_LAKE
# set it reads that lake instead (read-only, one tenant at a time: no demo, no migrate).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -z "${PROVLENS_LAKE:-}" ]; then
  export PROVLENS_DB=${PROVLENS_DB:-data/provlens.duckdb}
  if [ ! -e "$PROVLENS_DB" ]; then
    echo "provlens: no database at $PROVLENS_DB: building the demo database from the simulator (a few seconds)" >&2
    .venv/bin/python -m ingest demo --db "$PROVLENS_DB"
  else
    # a store written by an older provlens: the dashboard only reads, so bring it up to date first (a no-op if current)
    .venv/bin/python -m ingest migrate --db "$PROVLENS_DB"
  fi
fi
echo "provlens: starting the dashboard at http://${PROVLENS_ADDRESS:-127.0.0.1}:${PROVLENS_PORT:-8501}" \
     "(it warms up for a few seconds before it answers)" >&2
exec .venv/bin/streamlit run serve.py --server.address "${PROVLENS_ADDRESS:-127.0.0.1}" \
  --server.port "${PROVLENS_PORT:-8501}" --server.headless true --browser.gatherUsageStats false "$@"
