"""The checker on recorded histories (tests/fixtures/histories, no Docker).

Each history: 1 call/s held 8 s, host-a master until the fault at T0+10
(kill gateway on host-a), calls 1-2 over before it, 3-10 established, 11-16
set up after it; see the "note" event of each file.
"""
from dataclasses import replace
from pathlib import Path

import pytest

from harness import history
from harness.checks import CLASSES, assert_ok, assert_switchover_within, check, load_problems
from harness.history import History

FIX = Path(__file__).parent / "fixtures" / "histories"


def scenario(name):
    events = history.load(FIX / f"{name}.jsonl")
    (fault,) = history.of_kind(events, "fault", action="inject")
    return history.calls(events), fault.t, fault["node"]


def cid(n):
    return f"{n}-4242-uac-a1b2c3@172.28.3.31"


def with_call(calls, n, **changes):
    return [replace(c, **changes) if c.call_id == cid(n) else c for c in calls]


def reasons(verdict):
    return {(v.call_id, v.reason) for v in verdict.violations}


def test_clean_switchover_passes():
    calls, t_fault, old = scenario("clean")
    v = check(calls, t_fault, old, "accept", max_switchover_s=10)
    assert_ok(v)
    assert {k: v.counts[k] for k in CLASSES} == {"before": 2, "established": 8, "transient": 3,
                                                  "new": 3}
    assert v.switchover_s == pytest.approx(3.2)
    assert_switchover_within(v, 5)
    assert v.classes[cid(13)] == "transient" and v.classes[cid(14)] == "new"


def test_established_call_bye_481_fails_naming_it():
    calls, t_fault, old = scenario("clean")
    calls = with_call(calls, 5, bye_code=481, bye_ok_t=None, outcome="dropped")
    v = check(calls, t_fault, old, "accept")
    assert not v.ok
    assert reasons(v) == {(cid(5), "BYE answered 481")}
    assert v.violations[0].cls == "established"
    with pytest.raises(AssertionError, match=cid(5)):
        assert_ok(v)


def test_established_call_bye_lost_at_far_end_fails():
    calls, t_fault, old = scenario("clean")
    v = check(with_call(calls, 7, far_bye=False), t_fault, old, "accept")
    assert reasons(v) == {(cid(7), "far end never received the BYE")}


def test_established_call_released_by_network_fails():
    calls, t_fault, old = scenario("clean")
    c = next(c for c in calls if c.call_id == cid(4))
    calls = with_call(calls, 4, peer_bye_t=t_fault + 1, bye_sent_t=None, bye_code=None,
                      bye_ok_t=None, outcome="dropped")
    v = check(calls, t_fault, old, "accept")
    assert reasons(v) == {(cid(4), "released by the network (BYE received)")}
    assert c.answer_t < t_fault


def test_new_call_failing_after_switchover_fails():
    calls, t_fault, old = scenario("clean")
    c15 = next(c for c in calls if c.call_id == cid(15))
    calls = with_call(calls, 15, answer_t=None, final_code=503, final_t=c15.invite_t + 0.1,
                      gateway=None, outcome="failed", bye_sent_t=None, bye_ok_t=None, bye_code=None)
    v = check(calls, t_fault, old, "accept")
    assert reasons(v) == {(cid(15), "rejected with 503")}
    assert v.violations[0].cls == "new"


def test_transient_drops_pass_under_drop():
    calls, t_fault, old = scenario("transient_dropped")
    v = check(calls, t_fault, old, "drop")
    assert_ok(v)
    assert v.counts["transient"] == 3 and v.switchover_s == pytest.approx(3.2)


def test_transient_drops_fail_under_accept():
    calls, t_fault, old = scenario("transient_dropped")
    v = check(calls, t_fault, old, "accept")
    assert {c for c, _ in reasons(v)} == {cid(11), cid(12)}
    assert (cid(11), "rejected with 503") in reasons(v)
    assert all(x.cls == "transient" for x in v.violations)


def test_transient_answered_then_lost_fails_even_under_drop():
    calls, t_fault, old = scenario("transient_dropped")
    v = check(with_call(calls, 13, bye_code=None, bye_ok_t=None, outcome="dropped"),
              t_fault, old, "drop")
    assert reasons(v) == {(cid(13), "BYE got no response")}


def test_hung_call_fails_under_drop():
    calls, t_fault, old = scenario("transient_dropped")
    v = check(with_call(calls, 12, ended=False, abort=None), t_fault, old, "drop")
    assert reasons(v) == {(cid(12), "never ended (hung, unanswered)")}


def test_no_switchover_fails():
    calls, t_fault, old = scenario("no_switchover")
    v = check(calls, t_fault, old, "drop", max_switchover_s=10)
    assert v.switchover_s is None and v.counts["new"] == 0
    assert {r for c, r in reasons(v) if c is None} == {
        "no switchover: no call set up after the fault was answered by a gateway other than host-a",
        "no new call: the load was too small to prove anything"}


def test_switchover_too_slow_fails():
    calls, t_fault, old = scenario("clean")
    v = check(calls, t_fault, old, "accept", max_switchover_s=2.0)
    assert reasons(v) == {(None, "switchover took 3.200s > 2.0s")}


def test_no_switchover_expected_any_gateway_counts():
    # e.g. kill the slave's gateway: host-a keeps answering.
    calls, t_fault, _ = scenario("clean")
    calls = [replace(c, gateway="host-a") for c in calls]
    v = check(calls, t_fault, None, "accept", switchover_expected=False)
    assert_ok(v)
    assert v.switchover_s == pytest.approx(3.2)


def test_no_established_call_fails():
    calls, t_fault, old = scenario("clean")
    late = [c for c in calls if c.invite_t > t_fault]
    v = check(late, t_fault, old, "accept")
    assert (None, "no established call: the load was too small to prove anything") in reasons(v)


def test_bad_arguments():
    calls, t_fault, old = scenario("clean")
    with pytest.raises(ValueError, match="transient"):
        check(calls, t_fault, old, "maybe")
    with pytest.raises(ValueError, match="old_master"):
        check(calls, t_fault, None, "accept")


def test_history_round_trip(tmp_path):
    calls, _, _ = scenario("clean")
    with History(tmp_path / "h.jsonl") as h:
        ev = h.event("fault", action="inject", name="kill gateway", node="host-a")
        h.call(calls[0])
        h.event("note", text="done")
        with pytest.raises(ValueError, match="kind"):
            h.event("bogus")
    events = history.load(tmp_path / "h.jsonl")
    assert [e.kind for e in events] == ["fault", "call", "note"]
    assert events[0].t == ev.t and events[0]["node"] == "host-a"
    assert history.calls(events) == [calls[0]]


def test_history_bad_line_names_it(tmp_path):
    p = tmp_path / "h.jsonl"
    p.write_text('{"t": 1.0, "kind": "note"}\n{"t": 2.0, "kind": "oops"}\n')
    with pytest.raises(ValueError, match=r"h\.jsonl:2: .*oops"):
        history.load(p)


def test_transient_dropped_with_other_than_503_fails_under_drop():
    # "will drop transient calls" allows 503 or no answer, not any refusal
    calls, t_fault, old = scenario("transient_dropped")
    c11 = next(c for c in calls if c.call_id == cid(11))
    assert c11.final_code == 503
    v = check(with_call(calls, 11, final_code=486), t_fault, old, "drop")
    assert [(x.call_id, x.cls) for x in v.violations] == [(cid(11), "transient")]
    assert "only get 503 or no answer" in v.violations[0].reason
    assert v.drop_codes.get("486") == 1


def test_transient_counts_accepted_and_dropped_with_codes():
    calls, t_fault, old = scenario("transient_dropped")
    v = check(calls, t_fault, old, "drop")
    assert v.counts["transient_accepted"] + v.counts["transient_dropped"] == v.counts["transient"]
    assert sum(v.drop_codes.values()) == v.counts["transient_dropped"] > 0


def test_switchover_with_too_few_transient_calls_fails():
    calls, t_fault, old = scenario("clean")
    v = check(calls, t_fault, old, "accept", max_switchover_s=10, min_transient=4)
    assert (None, "3 transient calls, fewer than 4: nothing proven about calls in setup") in reasons(v)
    assert check(calls, t_fault, old, "accept", max_switchover_s=10, min_transient=3).ok


def test_calls_of_a_failed_unit_are_counted_lost_not_violations():
    calls, t_fault, old = scenario("clean")
    calls = with_call(calls, 5, bye_code=None, bye_ok_t=None, outcome="dropped")
    assert not check(calls, t_fault, old, "accept", max_switchover_s=10).ok
    v = check(calls, t_fault, old, "accept", max_switchover_s=10, lost_ok=frozenset({cid(5)}))
    assert v.ok and v.counts["lost"] == 1
    # a call of the failed unit that completed is not counted lost
    assert check(calls, t_fault, old, "accept", max_switchover_s=10,
                 lost_ok=frozenset({cid(6)})).counts["lost"] == 0


def _steady(t_fault, rate=1.0, before=10, after=12):
    from harness.sipp import CallRecord
    return [CallRecord(f"c{i}", invite_t=t_fault - before + i / rate)
            for i in range(int((before + after) * rate))]


def test_load_problems_clean_load_passes():
    t = 1000.0
    calls = _steady(t)
    assert load_problems(calls, len(calls), t, warmup_established=5, established=8,
                         after_s=12, rate=1.0) == []


def test_load_problems_count_mismatch_warmup_and_stall_fail():
    t = 1000.0
    calls = _steady(t)
    probs = load_problems(calls, len(calls) + 3, t, warmup_established=9, established=8,
                          after_s=12, rate=1.0)
    assert any("told to place" in p for p in probs)
    assert any("fewer than the warm-up" in p for p in probs)
    stalled = [c for c in calls if not (t + 2 < c.invite_t < t + 9)]
    probs = load_problems(stalled, len(stalled), t, warmup_established=5, established=8,
                          after_s=12, rate=1.0)
    assert any("no call placed for" in p for p in probs)
    short = [c for c in calls if c.invite_t < t + 5]
    probs = load_problems(short, len(short), t, warmup_established=5, established=8,
                          after_s=12, rate=1.0)
    assert any("the window is 12 s" in p for p in probs)
