# provlens: the dashboard by default; `provlens ingest run --every 40m` as the scheduled job (compose.yaml).
# Every step runs a command the test suite runs on a clone (untested here as an image build: these machines reach
# no base-image registry): scripts/setup.sh (the pinned dependencies into .venv), `python -m build --wheel
# --no-isolation` and `pip install --no-deps` of that wheel (tests/test_package_install.py), the `provlens` entry
# point and the health check (tests/test_deploy_examples.py runs HEALTHCHECK's command against a live dashboard).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --system --user-group --uid 10001 --create-home --home-dir /home/provlens provlens \
    && install -d -o provlens -g provlens /var/lib/provlens

WORKDIR /opt/provlens
# 1. the pinned runtime dependencies, as on a clone (a layer that changes only with the pins)
COPY requirements.txt requirements-dev.txt constraints.txt ./
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh && rm -rf /root/.cache/pip
# 2. provlens itself: the wheel built from the sources, installed without touching the pinned dependencies
COPY . /tmp/src
RUN .venv/bin/python -m pip install -q --no-cache-dir -c constraints.txt setuptools build \
    && .venv/bin/python -m build --wheel --no-isolation --outdir /tmp/dist /tmp/src \
    && .venv/bin/python -m pip install -q --no-cache-dir --no-deps --no-index /tmp/dist/provlens-*.whl \
    && rm -rf /tmp/src /tmp/dist

ENV PATH=/opt/provlens/.venv/bin:$PATH \
    PROVLENS_DB=/var/lib/provlens/provlens.duckdb \
    PROVLENS_ADDRESS=0.0.0.0 \
    PROVLENS_PORT=8501
USER provlens
WORKDIR /var/lib/provlens
# The DuckDB file: a local disk or a block volume, never an SMB/NFS share (Azure Files): DuckDB's file lock is not
# reliable there (README "Deploying").
VOLUME ["/var/lib/provlens"]
EXPOSE 8501
# Streamlit's own health endpoint; it answers once serve.py's warm-up is done.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/_stcore/health' % os.environ.get('PROVLENS_PORT', '8501'); sys.exit(urllib.request.urlopen(url, timeout=4).read() != b'ok')"]
ENTRYPOINT ["provlens"]
# The scheduled ingest: `docker run ... provlens ingest run --every 40m --log-format json` (compose.yaml).
CMD ["dashboard"]
