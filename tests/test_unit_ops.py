"""Unit operations' call rules (harness/unit_ops.py), on synthetic call records."""
from harness.sipp import CallRecord
from harness.unit_ops import lost_ok, recovery, recovery_check


def call(cid, invite, answer=None, outcome="completed"):
    return CallRecord(cid, invite_t=invite, answer_t=answer, outcome=outcome)


CALLS = [call("u1-est", 0, 1, "dropped"),       # tmedia-1, established, lost
         call("u1-trans", 9.9, None, "unanswered"),
         call("u1-early", 11, None, "failed"),  # before the spare answered
         call("u1-new", 14, 14.2),              # the spare answers: recovery at 14.2
         call("u1-late", 15, 15.1),
         call("u2-est", 0, 1)]
UNIT_OF = {c.call_id: ("tmedia-2" if c.call_id.startswith("u2") else "tmedia-1") for c in CALLS}


def test_rule_1_calls_of_the_failed_unit_before_recovery_may_be_lost():
    assert recovery(CALLS, UNIT_OF, "tmedia-1", 10.0) == 14.2
    assert lost_ok(CALLS, UNIT_OF, "tmedia-1", 10.0, "lost") == {"u1-est", "u1-trans", "u1-early"}


def test_rule_2_nothing_may_be_lost_when_kept():
    assert lost_ok(CALLS, UNIT_OF, "tmedia-1", 10.0, "kept") == frozenset()


def test_recovery_bound_and_no_recovery_fail():
    assert recovery_check(CALLS, UNIT_OF, "tmedia-1", 10.0, "lost", 6.0).status == "ok"
    assert recovery_check(CALLS, UNIT_OF, "tmedia-1", 10.0, "lost", 3.0).status == "failed"
    never = [c for c in CALLS if c.call_id not in ("u1-new", "u1-late")]
    assert recovery_check(never, UNIT_OF, "tmedia-1", 10.0, "lost", 6.0).status == "failed"
    assert recovery_check(CALLS, UNIT_OF, "tmedia-3", 10.0, "lost", 6.0).status == "unknown"


def test_voice_path_effect_new_calls_without_media_on_the_surviving_path_fail():
    from harness.unit_ops import effect_check
    before = {"board": "tmedia-1", "boots": {}, "status": {}, "services": {}}

    def judge(**extra):
        return effect_check(None, "voice_path_cut", "tmedia-1", before, 10.0, extra).status
    # a monitor that never declares the path down: half the new calls go to the lost path
    assert judge(new_calls=20, new_on_lost=0, new_on_other=10) == "failed"
    assert judge(new_calls=20, new_on_lost=0, new_on_other=20) == "ok"
    assert judge(new_calls=0, new_on_lost=0, new_on_other=0) == "unknown"


def test_an_effect_read_before_the_heal_is_waited_for_until_its_deadline(monkeypatch):
    # a watchdog reboot comes as late as the window after the fault ends: the check
    # read before the heal waits for it, and gives its last answer at the deadline
    import time
    from harness import unit_ops, verdict as vd
    answers = iter([vd.failed("unit effect", "no reboot yet")] * 3 + [vd.ok("unit effect", "rebooted")])
    monkeypatch.setattr(unit_ops, "effect_check", lambda *a: next(answers))
    monkeypatch.setattr("harness.util.time.sleep", lambda s: None)
    t0 = time.time()
    assert unit_ops.wait_effect(None, "unit_unpolled", "tmedia-1", {}, t0, {}, 10).status == "ok"
    monkeypatch.setattr(unit_ops, "effect_check", lambda *a: vd.failed("unit effect", "no reboot"))
    res = unit_ops.wait_effect(None, "unit_unpolled", "tmedia-1", {}, t0 - 10, {}, 5)
    assert res.status == "failed" and res.detail == "no reboot"
