#!/usr/bin/env bash
# Create .venv and install provlens' pinned dependencies (idempotent; skips work already done).
# Usage: scripts/setup.sh [dev]   -- "dev" adds the test tools, Debian's chromium for browser tests, Debian's
# nginx (nginx-light) for the SCIM access-log tests, and Node (Debian's nodejs and npm, when missing) with
# Azurite (the Azure Storage emulator, pinned in .tools/package-lock.json) for the blob-source and lake tests, Debian's
# systemd (for systemd-analyze, when missing) for the deploy/systemd unit tests, and Debian's openjdk-17-jre-headless
# (when java is missing) for the Spark tests.
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:-run}
py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
reqs=requirements.txt
[ "$want" = dev ] && reqs=requirements-dev.txt
stamp=".venv/.installed-$(cat requirements.txt requirements-dev.txt constraints.txt | sha256sum | cut -c1-16)-$want"
if [ ! -f "$stamp" ]; then
  # Not quiet: a first start installs ~80 packages (~150 MB of downloads) and used to look hung. Measured: 47 s for
  # the runtime dependencies into a fresh venv with no pip cache on a fast connection (README "Two commands").
  echo "provlens: installing the pinned dependencies ($reqs) into .venv: once, usually about a minute" \
       "(several on a slow connection); pip shows each package below" >&2
  started=$(date +%s)
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar on -r "$reqs" -c constraints.txt
  echo "provlens: dependencies installed in $(( $(date +%s) - started )) s" >&2
  touch "$stamp"
fi
if [ "$want" = dev ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's chromium for the browser tests..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "warning: chromium is not installed and we are not root; browser tests will fail" >&2
  fi
fi
if [ "$want" = dev ] && ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's systemd (systemd-analyze) for the deploy/systemd unit tests..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd) >/dev/null
  else
    echo "warning: systemd-analyze is not installed and we are not root; the systemd unit test will fail" >&2
  fi
fi
if [ "$want" = dev ] && ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's openjdk-17-jre-headless for the Spark tests (queries export --engine spark)..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless) >/dev/null
  else
    echo "warning: java is not installed and we are not root; the Spark tests will fail" >&2
  fi
fi
if [ "$want" = dev ] && ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's nodejs and npm for Azurite (blob-source tests)..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm) >/dev/null
  else
    echo "warning: npm is not installed and we are not root; the blob-source tests will fail" >&2
  fi
fi
if [ "$want" = dev ] && command -v npm >/dev/null 2>&1; then
  tools_stamp=".tools/node_modules/.installed-$(sha256sum .tools/package-lock.json | cut -c1-16)"
  if [ ! -f "$tools_stamp" ]; then
    echo "installing Azurite (Azure Storage emulator) into .tools/ for the blob-source tests..." >&2
    (cd .tools && npm ci --no-audit --no-fund --silent) && touch "$tools_stamp"
  fi
fi
if [ "$want" = dev ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's nginx-light for the SCIM access-log tests..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light) >/dev/null
  else
    echo "warning: nginx is not installed and we are not root; the SCIM access-log test runs without nginx" >&2
  fi
fi
