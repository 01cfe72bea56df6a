"""Joins Entra's provisioning events to the SCIM requests they caused, and classifies what does not join.

Keys (reference §5), strongest first: ``targetIdentity.id`` = ``resource_id``, ``sourceIdentity.id`` =
``external_id``, case-insensitive ``userName``; a request joins an event only inside a time window
around ``activityDateTime`` (default ±180 s). Not quadratic: every key is an equi-join on
(key, time bucket) where a bucket is as wide as the window, so each event is expanded to at most two
buckets and the hash join stays linear; the exact window is a range predicate on the survivors.

Two things are learned from the data before choosing, so weak keys do not cross-match:
- tenant affinity: which SCIM ``tenant`` each enterprise app (service principal) writes to, from the
  strong ``resource_id`` matches; a request in another app's tenant does not join this app's events;
- Entra's clients: a client (credential fingerprint, else user agent, else IP) joins events only when
  at least half of its non-probe requests inside Entra's log's time range have a candidate event
  (a client with no request in that range is not judged); the others are another client
  (an HRIS sync, a script) and are SCIM-only.
Each request then joins its best event (strongest key, then nearest in time); an event may have several
requests (the lookup GET, then the write).

Classes (``correlation.match_class`` / ``detail`` / ``suspicious``):
- ``matched``: an event and a request that belong together;
- ``contradiction``: the pair with the event's last write request, when Entra logged success but the
  server answered 4xx/5xx (``entra_success_scim_error``) or the server answered 2xx to the write but
  Entra logged a failure (``entra_failure_scim_success``);
- ``entra_only``: an event without a request: ``skipped`` (expected: Default Access, out of scope,
  no change), ``write_not_seen_by_server`` (a successful create/update/disable/delete: suspicious),
  ``failure_without_request``, ``no_request``, ``outside_scim_coverage`` (before/after the trail);
- ``scim_only``: a request without an event: ``probe``, ``other_client``, ``write_not_logged_by_entra``
  (suspicious), ``read_not_logged_by_entra``, ``outside_entra_coverage``.
"""

from __future__ import annotations

import re
import time

from ingest.store import Store, utcnow

DEFAULT_WINDOW_S = 180.0
WRITE_ACTIONS = ("create", "update", "disable", "delete")

# Requests and events are numbered (``rq``, ``ev``: their rowids, valid inside this transaction only) and every join
# below runs on those integers, not on the text ids; the ids come back where a tie-break or the output needs them,
# and the results are keyed by them (never by a number). Requests are read from derived_scim_requests_by_user
# (every request, with the lower-case userName the weak key needs: ingest/summaries/scim.py).
_PREPARE = """
CREATE OR REPLACE TEMP TABLE c_req AS
SELECT rowid AS rq, request_id, ts, epoch_ms(ts) AS t_ms, tenant,
       coalesce(credential_id, user_agent, client_ip, '(unknown)') AS client,
       method, status, operation, is_probe,
       method IN ('POST', 'PUT', 'PATCH', 'DELETE') AND coalesce(operation, '') NOT LIKE '%.search' AS is_write,
       resource_id, external_id, user_name_lower
FROM derived_scim_requests_by_user;

CREATE OR REPLACE TEMP TABLE c_ev AS
SELECT rowid AS ev, id AS event_id, activity_time, epoch_ms(activity_time) AS t_ms, service_principal_id, action,
       status, target_id, source_id, lower(user_name) AS user_name_lower
FROM events;

-- Which SCIM tenant each app writes to, learned from resource_id matches (the strong key).
CREATE OR REPLACE TEMP TABLE c_affinity AS
SELECT c.service_principal_id, r.tenant, count(*) AS n,
       sum(count(*)) OVER (PARTITION BY c.service_principal_id) AS total
FROM c_cand c JOIN c_req r USING (rq)
WHERE c.key_rank = 1 AND r.tenant IS NOT NULL
GROUP BY c.service_principal_id, r.tenant;

CREATE OR REPLACE TEMP TABLE c_cand_tenant AS
SELECT c.* FROM c_cand c JOIN c_req r USING (rq)
WHERE r.tenant IS NULL
   OR NOT EXISTS (SELECT 1 FROM c_affinity a WHERE a.service_principal_id = c.service_principal_id)
   OR EXISTS (SELECT 1 FROM c_affinity a WHERE a.service_principal_id = c.service_principal_id
              AND a.tenant = r.tenant AND a.n >= 0.1 * a.total);

-- Entra's clients: at least half of their non-probe requests have a candidate event.
CREATE OR REPLACE TEMP TABLE c_clients AS
SELECT r.client, count(*) AS requests, count(*) FILTER (WHERE h.rq IS NOT NULL) AS with_candidate,
       r.client = '(unknown)' OR count(*) FILTER (WHERE h.rq IS NOT NULL) >= 0.5 * count(*) AS is_entra
FROM c_req r LEFT JOIN (SELECT DISTINCT rq FROM c_cand_tenant) h USING (rq),
     (SELECT min(t_ms) AS first_ms, max(t_ms) AS last_ms FROM c_ev) cov
WHERE NOT r.is_probe AND r.t_ms BETWEEN cov.first_ms - $after_ms AND cov.last_ms + $before_ms
GROUP BY r.client;

-- Each request's best event. Nearly every request has one candidate (5M events: each of the 8.7M requests with a
-- candidate had exactly one), so only the requests with several are ranked (a window over all of them took ~7 s
-- of CPU); the event id breaks ties.
CREATE OR REPLACE TEMP TABLE c_pairs AS
WITH c AS MATERIALIZED (
    SELECT c.rq, c.ev, c.service_principal_id, c.key_rank, c.delta_ms
    FROM c_cand_tenant c JOIN c_req r USING (rq) JOIN c_clients k ON k.client = r.client AND k.is_entra
), several AS (SELECT rq FROM c GROUP BY rq HAVING count(*) > 1)
SELECT rq, ev, service_principal_id, key_rank, delta_ms FROM c ANTI JOIN several USING (rq)
UNION ALL
SELECT c.rq, c.ev, c.service_principal_id, c.key_rank, c.delta_ms
FROM c SEMI JOIN several USING (rq) JOIN c_ev e USING (ev)
QUALIFY row_number() OVER (PARTITION BY c.rq ORDER BY c.key_rank, abs(c.delta_ms), e.event_id) = 1;

-- The last write request of each matched event decides whether the two sides contradict each other.
CREATE OR REPLACE TEMP TABLE c_last_write AS
SELECT p.ev, p.rq,
       CASE WHEN e.status = 'success' AND r.status >= 400 THEN 'entra_success_scim_error'
            WHEN e.status = 'failure' AND r.status BETWEEN 200 AND 299 THEN 'entra_failure_scim_success'
       END AS contradiction
FROM c_pairs p JOIN c_req r USING (rq) JOIN c_ev e USING (ev)
WHERE r.is_write
QUALIFY row_number() OVER (PARTITION BY p.ev ORDER BY r.t_ms DESC, r.request_id DESC) = 1;
"""

# Candidate pairs, one chunk of request time at a time (exact: see above); each chunk's hash join fits
# in memory instead of spilling the whole trail's (B8: 5M events x 9M requests).
_CANDIDATES = """
WITH c_ev_chunk AS (
    -- a request at t joins events in [t - after, t + before]: for requests in [lo, hi) these events suffice
    SELECT * FROM c_ev WHERE t_ms BETWEEN $lo_ms - $after_ms AND $hi_ms + $before_ms
    AND status IS DISTINCT FROM 'skipped'
), ev_keys AS (
    SELECT ev, t_ms, 1 AS key_rank, target_id AS k FROM c_ev_chunk WHERE target_id IS NOT NULL
    UNION ALL
    SELECT ev, t_ms, 2, source_id FROM c_ev_chunk WHERE source_id IS NOT NULL
    UNION ALL
    SELECT ev, t_ms, 3, user_name_lower FROM c_ev_chunk WHERE user_name_lower IS NOT NULL
), ev_buckets AS (
    SELECT ev, t_ms, key_rank, k,
           unnest(generate_series((t_ms - $before_ms) // $bucket_ms, (t_ms + $after_ms) // $bucket_ms)) AS bucket
    FROM ev_keys
), req_chunk AS (
    SELECT * FROM c_req WHERE t_ms >= $lo_ms AND t_ms < $hi_ms AND NOT is_probe
), req_keys AS (
    SELECT rq, t_ms, 1 AS key_rank, resource_id AS k FROM req_chunk WHERE resource_id IS NOT NULL
    UNION ALL
    SELECT rq, t_ms, 2, external_id FROM req_chunk WHERE external_id IS NOT NULL
    UNION ALL
    SELECT rq, t_ms, 3, user_name_lower FROM req_chunk WHERE user_name_lower IS NOT NULL
), matched AS (
    SELECT r.rq, e.ev, min(e.key_rank) AS key_rank, any_value(r.t_ms - e.t_ms) AS delta_ms
    FROM req_keys r
    JOIN ev_buckets e ON e.key_rank = r.key_rank AND e.k = r.k AND e.bucket = r.t_ms // $bucket_ms
    WHERE r.t_ms BETWEEN e.t_ms - $before_ms AND e.t_ms + $after_ms
    GROUP BY r.rq, e.ev
)
SELECT m.rq, m.ev, e.service_principal_id, m.key_rank, m.delta_ms
FROM matched m JOIN c_ev e USING (ev)
"""

# Why a request nobody logged is SCIM-only.
_SCIM_ONLY_DETAIL = """CASE WHEN r.is_probe THEN 'probe'
            WHEN cov.first_ms IS NULL OR r.t_ms < cov.first_ms - $after_ms OR r.t_ms > cov.last_ms + $before_ms
                 THEN 'outside_entra_coverage'
            WHEN NOT coalesce(k.is_entra, true) THEN 'other_client'
            WHEN r.is_write THEN 'write_not_logged_by_entra'
            ELSE 'read_not_logged_by_entra' END"""

_INSERT = f"""
INSERT INTO correlation
SELECT e.event_id, r.request_id,
       CASE p.key_rank WHEN 1 THEN 'resource_id' WHEN 2 THEN 'external_id' ELSE 'user_name' END,
       CASE WHEN w.contradiction IS NOT NULL THEN 'contradiction' ELSE 'matched' END,
       w.contradiction, w.contradiction IS NOT NULL,
       e.activity_time, r.ts, p.delta_ms / 1000.0, p.service_principal_id, $now
FROM c_pairs p JOIN c_ev e USING (ev) JOIN c_req r USING (rq)
LEFT JOIN c_last_write w ON w.ev = p.ev AND w.rq = p.rq
UNION ALL
SELECT e.event_id, NULL, NULL, 'entra_only',
       CASE WHEN e.status = 'skipped' THEN 'skipped'
            WHEN e.t_ms < cov.first_ms - $before_ms OR e.t_ms > cov.last_ms + $after_ms THEN 'outside_scim_coverage'
            WHEN e.status = 'success' AND e.action IN ('create', 'update', 'disable', 'delete')
                 THEN 'write_not_seen_by_server'
            WHEN e.status = 'failure' THEN 'failure_without_request'
            ELSE 'no_request' END AS detail,
       coalesce(e.status = 'success' AND e.action IN ('create', 'update', 'disable', 'delete')
            AND e.t_ms BETWEEN cov.first_ms - $before_ms AND cov.last_ms + $after_ms, false),
       e.activity_time, NULL, NULL, e.service_principal_id, $now
FROM c_ev e, (SELECT min(t_ms) AS first_ms, max(t_ms) AS last_ms FROM c_req) cov
WHERE NOT EXISTS (SELECT 1 FROM c_pairs p WHERE p.ev = e.ev)
UNION ALL
SELECT NULL, r.request_id, NULL, 'scim_only',
       {_SCIM_ONLY_DETAIL},
       coalesce(NOT r.is_probe AND coalesce(k.is_entra, true) AND r.is_write
            AND r.t_ms BETWEEN cov.first_ms - $after_ms AND cov.last_ms + $before_ms, false),
       NULL, r.ts, NULL, NULL, $now
FROM c_req r LEFT JOIN c_clients k USING (client),
     (SELECT min(t_ms) AS first_ms, max(t_ms) AS last_ms FROM c_ev) cov
WHERE NOT EXISTS (SELECT 1 FROM c_pairs p WHERE p.rq = r.rq)
"""

_CLEANUP = ["c_req", "c_ev", "c_cand", "c_affinity", "c_cand_tenant", "c_clients", "c_pairs", "c_last_write"]


def _bind(sql: str, params: dict) -> dict:
    """Only the parameters the statement names (DuckDB rejects unused ones)."""
    return {name: params[name] for name in dict.fromkeys(re.findall(r"\$([A-Za-z_]\w*)", sql))}


CHUNK_MS = 86_400_000  # candidate pairs are found one day of request time at a time


def request_chunks(first_ms: int | None, last_ms: int | None, chunk_ms: int = CHUNK_MS) -> list[tuple[int, int]]:
    """[lo, hi) ranges of request time, aligned to ``chunk_ms``, covering first..last (one empty range if
    there are no requests)."""
    if first_ms is None or last_ms is None:
        return [(0, 0)]
    lo = first_ms // chunk_ms * chunk_ms
    return [(a, a + chunk_ms) for a in range(lo, last_ms + 1, chunk_ms)]


def correlation_statements(before_s: float, after_s: float,
                           chunks: list[tuple[int, int]] | None = None) -> list[tuple[str, dict]]:
    """The statements that rebuild ``correlation`` (run by the store in one transaction); ``chunks``:
    the request-time ranges for the candidate search (default: one range over all time)."""
    before_ms, after_ms = int(before_s * 1000), int(after_s * 1000)
    params = {"before_ms": before_ms, "after_ms": after_ms, "bucket_ms": max(before_ms + after_ms, 1000),
              "now": utcnow()}
    prepare = [sql.strip() for sql in _PREPARE.split(";\n") if sql.strip()]
    statements = [(sql, _bind(sql, params)) for sql in prepare[:2]]  # c_req, c_ev
    for i, (lo, hi) in enumerate(chunks or [(-(2 ** 62), 2 ** 62)]):
        head = "CREATE OR REPLACE TEMP TABLE c_cand AS " if i == 0 else "INSERT INTO c_cand "
        sql = head + _CANDIDATES.strip()
        statements.append((sql, _bind(sql, {**params, "lo_ms": lo, "hi_ms": hi})))
    statements += [(sql, _bind(sql, params)) for sql in [*prepare[2:], _INSERT]]
    return statements + [(f"DROP TABLE IF EXISTS {t}", {}) for t in _CLEANUP]


def correlate(store: Store, *, window: tuple[float, float] | None = None) -> dict:
    """Rebuild the correlation; returns {"classes": {class/detail: n}, "seconds": s, "window": (b, a)}."""
    before_s, after_s = window or (DEFAULT_WINDOW_S, DEFAULT_WINDOW_S)
    started = time.perf_counter()
    first_ms, last_ms = store.con.execute("SELECT epoch_ms(min(ts)), epoch_ms(max(ts)) FROM scim_requests").fetchone()
    store.replace_correlation(correlation_statements(before_s, after_s, request_chunks(first_ms, last_ms)))
    store.set_meta("correlation_window_s", f"{before_s:g},{after_s:g}")
    store.set_meta("correlation_computed_at", utcnow().isoformat())
    rows = store.con.execute("SELECT match_class || coalesce('/' || detail, ''), count(*) FROM correlation "
                             "GROUP BY ALL ORDER BY 1").fetchall()
    return {"classes": dict(rows), "seconds": time.perf_counter() - started, "window": (before_s, after_s)}


def correlate_if_scim(store: Store, *, window: tuple[float, float] | None = None) -> dict | None:
    """For other sources (a Graph or file load): recompute only when a SCIM trail has been loaded."""
    if not store.con.execute("SELECT count(*) FROM scim_requests").fetchone()[0]:
        return None
    return correlate(store, window=window)
