"""The ISUP legs of an SS7 operation judged like SIP calls (harness/isup_load.py): the far
end's trace as caller-side records, the SIP calls to a trunk group joined with the far
end's record of them, and the unit rule `isup-lost` (harness/unit_ops.py)."""
from __future__ import annotations

from harness import unit_ops
from harness.checks import check
from harness.isup_load import is_isup, isup_records, join_sip_isup
from harness.sipp import CallRecord, ruri_user
from scenarios.matrix import MatrixError, parse

import pytest

T = 1000.0


def out(cic, iam, *, anm=None, rel=None, rlc=None, cause=16, by="peer", outcome="answered"):
    return {"cic": cic, "direction": "out", "called": "4930100", "iam": iam, "acm": iam + 0.01,
            "anm": anm, "rel": rel, "rlc": rlc, "cause": cause, "released_by": by,
            "outcome": outcome, "reattempt_of": None}


def leg(cic, t, outcome="completed"):
    """sipp-uas's leg of the far end's call, named by the interworking's X-Tb-Call."""
    return CallRecord(f"uas-{cic}", "uas", invite_t=t, orig=f"isup:{cic}:{t:.3f}",
                      bye_sent_t=t + 5 if outcome == "completed" else None, outcome=outcome)


def test_the_far_ends_calls_become_caller_records_with_their_sip_leg_and_unit():
    trace = [out(2, T, anm=T + 0.2, rel=T + 8, rlc=T + 8.01),                   # normal
             out(32, T + 1, anm=T + 1.2, rel=T + 3, cause=41, by="system"),      # cut by the system
             out(4, T + 2, rel=T + 2.1, cause=17, by="system", outcome="unanswered"),  # busy
             out(6, T + 3, rel=T + 3.1, by="peer", outcome="glare"),             # placed again
             {**out(8, T + 4), "direction": "in"}]                              # not its own call
    # (CIC 2's leg: the nearest in time of two, one an earlier call's on the circuit)
    recs, unit_of = isup_records(trace, [leg(2, T - 4.0, "dropped"), leg(2, T + 0.003),
                                         leg(32, T + 1.002, "dropped")])
    by = {r.call_id.split("-")[1]: r for r in recs}
    assert sorted(by) == ["2", "32", "4"]
    assert (by["2"].outcome, by["2"].far_bye, by["2"].bye_code) == ("completed", True, 200)
    assert by["32"].outcome == "dropped" and by["32"].peer_bye_t == T + 3 and by["32"].far_bye is False
    assert (by["4"].outcome, by["4"].final_code) == ("failed", 486)           # RFC 3398: 17 -> 486
    assert unit_of[by["2"].call_id] == "tmedia-1" and unit_of[by["32"].call_id] == "tmedia-2"
    assert all(is_isup(r) for r in recs)
    # a call whose SIP leg never took the BYE is not a completed call for the checker
    recs, _ = isup_records([out(2, T, anm=T + 0.2, rel=T + 8, rlc=T + 8.01)], [leg(2, T + 9.0)])
    assert recs[0].far_legs == 0
    v = check(recs, T + 5, None, switchover_expected=False)
    assert not v.ok and "far end" in str(v.violations[0])


def test_sip_calls_to_a_trunk_group_are_joined_by_their_called_number():
    calls = [CallRecord("a", "uac", invite_t=T, called="7710001"),
             CallRecord("b", "uac", invite_t=T, called="7720002"),
             CallRecord("c", "uac", invite_t=T, called="7710003")]
    trace = [{**out(2, T), "direction": "in", "called": "7710001", "released_by": "system",
              "rlc": T + 8},
             {**out(40, T), "direction": "in", "called": "7720002", "released_by": "peer",
              "rlc": T + 8}]
    join_sip_isup(calls, trace)
    assert [(c.far_legs, c.far_bye) for c in calls] == [(1, True), (1, False), (0, False)]
    assert all(is_isup(c) for c in calls) and not is_isup(CallRecord("d", "uac", called="1000"))
    assert ruri_user("INVITE sip:7710003@10.0.3.21:5060 SIP/2.0") == "7710003"
    assert ruri_user("INVITE sip:10.0.3.21 SIP/2.0") is None


def test_isup_lost_lets_only_the_units_isup_calls_go():
    def call(cid, called, t):      # answered, ended normally at both ends
        return CallRecord(cid, "uac", invite_t=t, answer_t=t + 0.1, final_t=t + 0.1, final_code=200,
                          bye_sent_t=t + 3, bye_code=200, bye_ok_t=t + 3, far_bye=True,
                          ended=True, outcome="completed", called=called)
    calls = [call("sip", "1000", T - 5), call("isup-2-1", None, T - 5), call("s2i", "7710001", T - 4),
             call("late", "7710002", T + 2)]
    unit_of = {c.call_id: "tmedia-1" for c in calls}
    # (an ISUP call answered after the fault is the recovery: later ones are kept)
    assert unit_ops.lost_ok(calls, unit_of, "tmedia-1", T, "isup-lost") == {"isup-2-1", "s2i"}
    assert unit_ops.lost_ok(calls, unit_of, "tmedia-1", T, "lost") >= {"sip", "isup-2-1", "s2i"}


SS7_OP = """
loads:
  ss7: {rate: 10, hold_s: 8, warmup_established: 60, after_s: 8, isup_rate: 2}
  plain: {rate: 10, hold_s: 8, warmup_established: 60, after_s: 8}
defaults: {load: plain}
operations:
  - id: a
    seed: s
    fault: {kind: kill_process, target: master, app: gateway}
    switchover: true
    transient: drop
  - id: b
    seed: s
    ss7: %s
    load: %s
    fault: {kind: ss7_crash, target: tmedia-1}
    unit: {target: tmedia-1, calls: isup-lost}
    switchover: false
    transient: accept
"""


def test_an_ss7_operation_names_the_active_isup_and_needs_isup_calls():
    ops = parse(SS7_OP % ("{isup_active: tmedia-1}", "ss7"))
    assert ops[1].ss7 == {"isup_active": "tmedia-1"} and ops[1].load.isup_rate == 2
    with pytest.raises(MatrixError, match="needs a load with isup_rate"):
        parse(SS7_OP % ("{isup_active: tmedia-1}", "plain"))
    with pytest.raises(MatrixError, match="ss7 must be"):
        parse(SS7_OP % ("{isup_active: tmedia-9}", "ss7"))
    with pytest.raises(MatrixError, match="ss7 must be"):
        parse(SS7_OP % ("{active: tmedia-1}", "ss7"))


def test_the_ss7_variant_runs_the_ss7_operations_and_only_those():
    from scenarios.matrix import load
    every = load()
    ss7, default = load(variant="ss7"), load(variant="default")
    assert ss7 and all(op.ss7 for op in ss7) and not any(op.ss7 for op in default)
    assert len(ss7) + len(default) == len(every)
    assert load(variant="external-db") == default
