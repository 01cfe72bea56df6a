"""docs/reliability.md is generated from the data the reliability tests are parametrised with; this test
fails when the committed file and the tests disagree (regenerate: python -m tests.reliability_harness
--write-doc)."""

from __future__ import annotations

from tests import reliability_harness as h


def test_committed_doc_equals_what_the_tests_check():
    assert h.DOC.read_text(encoding="utf-8") == h.render_doc(), \
        "docs/reliability.md is stale: run `python -m tests.reliability_harness --write-doc`"


def test_doc_lists_every_fault_case_and_the_kill_total():
    doc = h.render_doc()
    for case in h.FAULT_MATRIX:
        assert f"| {case.name} |" in doc and case.outcome in doc
    assert f"**{h.GRAPH_KILLS + h.SCIM_KILLS}**" in doc and h.GRAPH_KILLS + h.SCIM_KILLS >= 20
