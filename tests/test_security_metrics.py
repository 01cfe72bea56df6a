"""Streamlit's ``/_stcore/metrics`` answered anyone, without a login (issue 27). serve.py answers it with 404
unless ``PROVLENS_STREAMLIT_METRICS=1``; checked over HTTP against the real ``streamlit run serve.py``."""

from __future__ import annotations

import urllib.error
import urllib.request

from bench.dashboard import running_dashboard


def _get(url: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_metrics_answer_404_by_default(demo_db, tmp_path, monkeypatch):
    monkeypatch.delenv("PROVLENS_STREAMLIT_METRICS", raising=False)
    for base_path in ("", "provlens"):  # also behind a reverse proxy's prefix (server.baseUrlPath)
        with running_dashboard(str(demo_db), tmp_path / f"server{base_path}.log", base_path=base_path) as (base, _p):
            for path in ("/_stcore/metrics", "/_stcore/metrics/", "/_stcore/metrics?families=session_events",
                         "//_stcore/metrics"):
                for method in ("GET", "HEAD", "POST"):
                    status, body = _get(base + path, method)
                    assert status == 404, (base_path, path, method, status)
                    assert b"session" not in body
            assert _get(base + "/_stcore/health") == (200, b"ok")  # the rest of the server answers


def test_metrics_answer_when_switched_on(demo_db, tmp_path, monkeypatch):
    monkeypatch.setenv("PROVLENS_STREAMLIT_METRICS", "1")
    with running_dashboard(str(demo_db), tmp_path / "server.log") as (base, _proc):
        status, body = _get(base + "/_stcore/metrics")
        assert status == 200 and b"# TYPE" in body, (status, body[:300])
