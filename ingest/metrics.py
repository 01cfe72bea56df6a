"""Prometheus metrics of the ingest runs: ``--metrics-textfile PATH`` and ``--pushgateway URL`` (prometheus-client).

After a command (or each round of ``ingest run --every``) the runs it started (``ingest.store.RUNS_STARTED``) name
the (source, scope) pairs to report; the values are read from the store, so they hold across runs and processes:

- counters (sums over every run of that source and scope the store recorded): events loaded (new ids), updated,
  rejected; pages, retries, 429 answers;
- gauges: the last successful run's end, the last run's duration and whether it succeeded, the newest activity
  and the data lag (now minus it), Graph jobs in quarantine (latest job snapshot), and active alerts
  (:func:`active_alerts`, per rule, once an alert was recorded).

scope is the Graph ``tenant/service principal`` (``tenant/*`` for all), the blob container's URL, or ``all`` for
``files`` and ``scim`` (their runs are not split by file set). The textfile follows node-exporter's textfile
convention (written to a temporary file in the same folder, then renamed); the Pushgateway gets the same metrics
with job ``provlens`` and the grouping key ``command``. A failure to write or push is one warning line: the
ingest's own exit code stands, and the stale ``provlens_last_success_timestamp_seconds`` is what an alert sees.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ingest.graph.log import redact_url_credentials

# prometheus-client is imported when metrics are asked for (not on every command's start).

LABELS = ("source", "scope")
NO_SCOPE = "all"  # the scope label of runs recorded without one (files, scim)
PUSH_JOB = "provlens"


def add_metrics_arguments(p: argparse.ArgumentParser, command: str, *, after: bool = True) -> None:
    """``--metrics-textfile`` and ``--pushgateway``, for ``ingest run`` and each source command. With ``after``
    ``ingest.cli.main`` publishes once the handler returns; ``ingest run`` publishes after each round itself."""
    p.set_defaults(metrics_command=command, metrics_after=after)
    g = p.add_argument_group("monitoring")
    g.add_argument("--metrics-textfile", metavar="PATH",
                   help="after the run (each round with --every), write Prometheus metrics to PATH (node-exporter "
                        "textfile collector: a .prom file in its folder; written to a temporary file, then renamed)")
    g.add_argument("--pushgateway", metavar="URL",
                   help="after the run, push the same metrics to this Prometheus Pushgateway (job provlens, "
                        "grouped by command); credentials in the URL are sent as basic auth and never printed")


def runs_mark() -> int:
    """Where the list of runs this process started ends now (pass it to :func:`publish` later)."""
    from ingest.store import RUNS_STARTED

    return len(RUNS_STARTED)


def wanted(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "metrics_textfile", None) or getattr(args, "pushgateway", None))


@dataclass
class ScopeMetrics:
    source: str
    scope: str  # as the label shows it
    loaded: int = 0
    updated: int = 0
    rejected: int = 0
    pages: int = 0
    retries: int = 0
    throttled: int = 0
    last_success: float | None = None  # epoch seconds
    last_duration: float | None = None
    last_ok: bool | None = None
    newest_activity: float | None = None
    quarantined: int | None = None  # graph scopes only

    @property
    def labels(self) -> list[str]:
        return [self.source, self.scope]


def _epoch(value) -> float | None:
    return value.timestamp() if value is not None else None


def active_alerts(db_path: str) -> dict[str, int] | None:
    """Active alerts per rule (``alerts`` rows not resolved), for ``provlens_active_alerts{rule}``. None while the
    store has never recorded an alert (alerts not evaluated after runs: no ``[alerts]`` in provlens.toml), so the
    metric is left out rather than reported as a made-up 0; once alerts exist every rule gets a sample."""
    from ingest.alerts.model import RULES
    from ingest.dbfile import read_connection

    with read_connection(db_path) as con:
        rows = con.execute("SELECT rule, count(*) FILTER (WHERE resolved_at IS NULL) FROM alerts GROUP BY rule"
                           ).fetchall()
    if not rows:
        return None
    counts = dict.fromkeys(RULES, 0)
    counts.update({rule: int(n) for rule, n in rows})
    return counts


_SCOPE_SQL = """
    SELECT coalesce(sum(records_new), 0), coalesce(sum(records_updated), 0), coalesce(sum(records_rejected), 0),
           coalesce(sum(pages), 0), coalesce(sum(retries), 0), coalesce(sum(throttled), 0),
           max(ended_at) FILTER (WHERE outcome = 'success'),
           arg_max(epoch(ended_at) - epoch(started_at), run_id) FILTER (WHERE ended_at IS NOT NULL),
           arg_max(outcome, run_id) FILTER (WHERE ended_at IS NOT NULL)
    FROM ingest_runs WHERE source = $source AND scope IS NOT DISTINCT FROM $scope
"""

# The newest activity a scope's data holds: Graph by service principal (all for `tenant/*`), SCIM requests by time,
# files and blobs by the events their runs wrote last.
_NEWEST_GRAPH = "SELECT max(activity_time) FROM events WHERE $sp IS NULL OR service_principal_id = $sp"
_NEWEST_SCIM = "SELECT max(ts) FROM scim_requests"
_NEWEST_BY_RUNS = """
    SELECT max(activity_time) FROM events WHERE ingest_run_id IN (
        SELECT run_id FROM ingest_runs WHERE source = $source AND scope IS NOT DISTINCT FROM $scope)
"""
# Jobs whose latest snapshot says Quarantine.
_QUARANTINED = """
    SELECT count(*) FROM (
        SELECT job_id, arg_max(status_code, captured_at) AS status FROM sync_job_snapshots
        WHERE $sp IS NULL OR service_principal_id = $sp GROUP BY job_id) WHERE status = 'Quarantine'
"""


def _graph_sp(scope: str | None) -> str | None:
    sp = (scope or "").rpartition("/")[2]
    return None if sp in ("", "*") else sp


def read_scopes(db_path: str, pairs: list[tuple[str, str | None]]) -> list[ScopeMetrics]:
    """The metrics of each (source, scope) as the store holds them now."""
    from ingest.dbfile import read_connection, release

    out: list[ScopeMetrics] = []
    try:
        with read_connection(db_path) as con:
            for source, scope in pairs:
                row = con.execute(_SCOPE_SQL, {"source": source, "scope": scope}).fetchone()
                m = ScopeMetrics(source, scope if scope is not None else NO_SCOPE, *map(int, row[:6]),
                                 last_success=_epoch(row[6]), last_duration=row[7],
                                 last_ok=None if row[8] is None else row[8] == "success")
                if source == "graph":
                    sp = {"sp": _graph_sp(scope)}
                    newest = con.execute(_NEWEST_GRAPH, sp).fetchone()[0]
                    m.quarantined = con.execute(_QUARANTINED, sp).fetchone()[0]
                elif source == "scim":
                    newest = con.execute(_NEWEST_SCIM).fetchone()[0]
                else:
                    newest = con.execute(_NEWEST_BY_RUNS, {"source": source, "scope": scope}).fetchone()[0]
                m.newest_activity = _epoch(newest)
                out.append(m)
    finally:
        release(db_path)
    return out


class _Snapshot:
    """A prometheus-client collector over metrics read once (the registry asks it at write/push time)."""

    def __init__(self, scopes: list[ScopeMetrics], alerts: dict | None, now: float):
        self.scopes, self.alerts, self.now = scopes, alerts, now

    def collect(self) -> Iterator:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        def counter(name: str, doc: str, attr: str) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=LABELS)
            for m in self.scopes:
                family.add_metric(m.labels, getattr(m, attr))
            return family

        def gauge(name: str, doc: str, value) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=LABELS)
            for m in self.scopes:
                v = value(m)
                if v is not None:
                    family.add_metric(m.labels, float(v))
            return family

        yield counter("provlens_events_loaded", "Events (SCIM requests for source=scim) added to the store: ids it "
                      "did not hold, over every run of this source and scope", "loaded")
        yield counter("provlens_events_updated", "Stored events whose content changed, over every run", "updated")
        yield counter("provlens_events_rejected", "Records rejected (bad input, missing files), over every run",
                      "rejected")
        yield counter("provlens_pages", "Pages (Graph) or files read, over every run", "pages")
        yield counter("provlens_retries", "Requests retried, over every run", "retries")
        yield counter("provlens_throttled", "429 Too Many Requests answers, over every run", "throttled")
        yield gauge("provlens_last_success_timestamp_seconds", "End of the last successful run (Unix time)",
                    lambda m: m.last_success)
        yield gauge("provlens_last_run_success", "1 if the last run succeeded, 0 if it failed or was partial",
                    lambda m: None if m.last_ok is None else int(m.last_ok))
        yield gauge("provlens_run_duration_seconds", "Duration of the last run", lambda m: m.last_duration)
        yield gauge("provlens_newest_activity_timestamp_seconds", "Newest activity time the data holds (Unix time)",
                    lambda m: m.newest_activity)
        yield gauge("provlens_data_lag_seconds", "Seconds from the newest activity the data holds to the time these "
                    "metrics were written", lambda m: m.newest_activity and self.now - m.newest_activity)
        yield gauge("provlens_jobs_quarantined", "Provisioning jobs whose latest status snapshot is Quarantine "
                    "(Graph scopes)", lambda m: m.quarantined)
        if self.alerts is not None:  # the alert state (issue 24); left out until an alert was ever recorded
            family = GaugeMetricFamily("provlens_active_alerts", "Alerts firing now, per rule", labels=("rule",))
            for rule, count in sorted(self.alerts.items()):
                family.add_metric([rule], float(count))
            yield family


def registry_for(db_path: str, pairs: list[tuple[str, str | None]], now: float | None = None):
    """A prometheus-client registry holding the metrics of ``pairs`` as the store holds them now."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    scopes = read_scopes(db_path, pairs) if pairs else []
    registry.register(_Snapshot(scopes, active_alerts(db_path), time.time() if now is None else now))
    return registry


def _run_pairs(db_path: str, since: int) -> list[tuple[str, str | None]]:
    """The (source, scope) pairs of the runs this process started on ``db_path`` since ``since``."""
    import os

    from ingest.dbfile import read_connection, release
    from ingest.store import RUNS_STARTED

    key = os.path.realpath(db_path)
    ids = [run_id for path, run_id in RUNS_STARTED[since:] if os.path.realpath(path) == key]
    if not ids:
        return []
    try:
        with read_connection(db_path) as con:
            rows = con.execute("SELECT DISTINCT source, scope FROM ingest_runs WHERE list_contains($ids, run_id)",
                               {"ids": ids}).fetchall()
    finally:
        release(db_path)
    return sorted(rows, key=lambda r: (r[0], r[1] or ""))


def _push(url: str, registry, command: str, timeout: float = 10.0) -> None:
    """Push with basic auth taken out of the URL (never part of a message)."""
    from prometheus_client import push_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    parts = urlsplit(url if "://" in url else f"http://{url}")
    handler = default_handler
    if parts.username is not None or parts.password is not None:
        user, password = parts.username or "", parts.password or ""
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urlunsplit(parts._replace(netloc=netloc))

        def handler(url, method, timeout, headers, data):  # noqa: F811 - basic auth from the URL
            return basic_auth_handler(url, method, timeout, headers, data, user, password)
    push_to_gateway(url, job=PUSH_JOB, registry=registry, grouping_key={"command": command}, timeout=timeout,
                    handler=handler)


def publish(args: argparse.Namespace, db_path: str, since: int, command: str, stream=sys.stderr) -> bool:
    """Write/push the metrics of the runs started since ``since``; False (after one warning line) if that failed."""
    if not wanted(args):
        return True
    ok = True
    try:
        registry = registry_for(db_path, _run_pairs(db_path, since))
    except Exception as exc:  # noqa: BLE001 - monitoring must not turn a finished ingest into a traceback
        print(f"warning: metrics not written: cannot read {db_path} ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''})", file=stream)
        return False
    if args.metrics_textfile:
        from prometheus_client import write_to_textfile

        try:
            write_to_textfile(args.metrics_textfile, registry)
        except OSError as exc:
            print(f"warning: metrics not written to {args.metrics_textfile}: {exc.strerror or exc}", file=stream)
            ok = False
    if args.pushgateway:
        try:
            _push(args.pushgateway, registry, command)
        except Exception as exc:  # noqa: BLE001 - URLError, HTTPError, a bad URL: one line
            print(f"warning: metrics not pushed to {redact_url_credentials(args.pushgateway)}: "
                  f"{redact_url_credentials(str(exc))}", file=stream)
            ok = False
    return ok
