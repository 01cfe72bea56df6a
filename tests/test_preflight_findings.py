"""Preflight findings from hand-built inputs (tests/preflight_cases.py: local dataclasses shaped like the source
model's, with planted problems written by hand): every planted problem is found, nothing else (precision and recall
1.0), each with its evidence, Entra's predicted outcome and the fix; Unknown values are said, never guessed.
The end-to-end run against the fake Graph server is the lead's (after merging the source model)."""

from __future__ import annotations

from ingest.preflight.findings import KINDS, find, unknown_attributes, work_domains
from tests.preflight_cases import PLANTED, PLANTED_SOURCE_ONLY, Model, Unknown, targets, user, users


def _found(findings) -> dict[tuple[str, str], bool]:
    return {(f.kind, f.identity): f.unknown for f in findings}


def _precision_recall(found: set, planted: set) -> tuple[float, float]:
    hits = len(found & planted)
    return hits / len(found), hits / len(planted)


def test_every_planted_problem_and_nothing_else():
    us = users()
    found = find(us, Model(), targets(), domains=work_domains(us))
    assert _found(found) == PLANTED
    assert _precision_recall(set(_found(found)), set(PLANTED)) == (1.0, 1.0)


def test_without_the_target_side_only_the_source_problems():
    us = users()
    found = find(us, Model(), None, domains=work_domains(us))
    assert _found(found) == PLANTED_SOURCE_ONLY


def test_each_finding_has_evidence_outcome_and_fix():
    us = users()
    by_key = {(f.kind, f.identity): f for f in find(us, Model(), targets(), domains=work_domains(us))}
    dup = by_key[("duplicate_user_name", "u2")]
    assert dup.evidence["colliding_with"] == ["Alice@contoso.com (u1@contoso.com)"]
    assert dup.evidence["colliding_ids"] == ["u1"]
    assert dup.group_key == by_key[("duplicate_user_name", "u1")].group_key == "alice@contoso.com"
    assert "EntryConflict" in dup.predicted_outcome and "409" in dup.predicted_outcome
    assert by_key[("missing_required", "u3")].evidence["missing"] == ["name.familyName"]
    assert "AttributeValidationFailed" in by_key[("missing_required", "u3")].predicted_outcome
    assert by_key[("non_work_email", "u4")].evidence["emails"] == ["carol@gmail.com"]
    assert "invalidValue" in by_key[("non_work_email", "u4")].predicted_outcome
    assert "NotEffectivelyEntitled" in by_key[("default_access_only", "u5")].predicted_outcome
    assert by_key[("nested_group_only", "u6")].evidence["nested_via"] == ["g1"]
    conflict = by_key[("target_conflict", "u8")]
    assert (conflict.target_id, conflict.evidence["target_external_id"]) == ("t8", "someone-else")
    assert by_key[("disabled_but_active_in_target", "u7")].target_id == "t7"
    assert by_key[("orphan", "target:o2")].source_id is None
    for f in by_key.values():
        assert f.recommended_action == KINDS[f.kind][2] and f.recommended_action
        assert set(f.row()) >= {"kind", "identity", "detail", "evidence", "predicted_outcome", "recommended_action"}


def test_an_unknown_attribute_is_stated_not_guessed():
    us = users()
    f = {(x.kind, x.identity): x for x in find(us, Model(), targets(), domains=work_domains(us))}
    unknown = f[("missing_required", "u10")]
    assert unknown.unknown and unknown.detail == "unknown: userName: function Foo is not supported"
    assert unknown.predicted_outcome.endswith("(if unknown: userName: function Foo is not supported)")
    # an unknown userName collides with nobody and conflicts with nothing
    assert not any(k[1] == "u10" for k in f if k[0] != "missing_required")
    # an Unknown scoping result with a problem: found, and flagged unknown with the reason
    lee = user("u13", "Alice@contoso.com", in_scope=Unknown("department: not read"))
    dup = {x.identity: x for x in find([users()[0], lee], Model(), None) if x.kind == "duplicate_user_name"}
    assert dup["u13"].unknown and "in scope unknown: department: not read" in dup["u13"].detail
    assert not dup["u1"].unknown


def test_an_unknown_matching_value_makes_the_conflict_unknown():
    u = user("u8", "gina@contoso.com", attributes={"externalId": Unknown("Join of a multi-valued attribute")})
    [conflict] = [x for x in find([u], Model(), targets()) if x.kind == "target_conflict"]
    assert conflict.unknown and conflict.detail.startswith("unknown: externalId: Join of a multi-valued attribute")


def test_matching_on_username_is_no_conflict():
    """With userName as the matching attribute the existing GINA@ account is matched (case-insensitively): Entra
    updates it, nothing collides."""
    model = Model(matching_attributes=[("userName", "[userPrincipalName]")])
    assert not [x for x in find(users(), model, targets()) if x.kind == "target_conflict"]


def test_work_domains():
    us = users()
    assert work_domains(us) == {"contoso.com"}  # the guest's #EXT# UPN teaches nothing
    assert work_domains(us, ["Fabrikam.com"]) == {"contoso.com", "fabrikam.com"}
    assert work_domains(us, ["fabrikam.com"], ["Gmail.com"]) == {"gmail.com"}  # given by the admin: only those
    # with gmail.com allowed, carol is fine and the others' contoso.com addresses are not
    found = find(us, Model(), None, domains={"gmail.com"})
    assert "u4" not in {f.identity for f in found if f.kind == "non_work_email"}
    assert "u1" in {f.identity for f in found if f.kind == "non_work_email"}


def test_unknown_attributes_are_counted_for_the_run():
    assert unknown_attributes(users()) == {"userName": 1}
