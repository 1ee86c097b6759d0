"""The pure parts of harness/post_checks.py: re-INVITE rounds across the unit from both
ends' traces, check results with their status, and the checks' outcome as a sub-check."""
import pytest

from harness import post_checks
from harness.post_checks import CheckResult, Round, dialog_rounds
from harness.sipp import TraceLine


def line(t, d, cid, cseq, first, method="INVITE"):
    return TraceLine(0, t, d, cid, cseq, method, first)


CALLER = [  # the caller's trace: call X, its re-INVITE (CSeq 2) answered 200
    line(1.000, "S", "X", 1, "INVITE sip:9000@unit SIP/2.0"),
    line(1.010, "R", "X", 1, "SIP/2.0 200 OK"),
    line(3.000, "S", "X", 2, "INVITE sip:unit SIP/2.0"),
    line(3.001, "R", "X", 2, "SIP/2.0 100 Trying"),
    line(3.020, "R", "X", 2, "SIP/2.0 200 OK"),
]
FAR = [  # far end A: the unit's B-leg of X, with the unit's own CSeqs
    line(1.002, "R", "X-b2b_1", 1, "INVITE sip:9000@uas SIP/2.0"),
    line(1.008, "S", "X-b2b_1", 1, "SIP/2.0 200 OK"),
    line(3.005, "R", "X-b2b_1", 7, "INVITE sip:uas SIP/2.0"),
    line(3.006, "R", "X-b2b_1", 7, "INVITE sip:uas SIP/2.0"),     # a retransmission
    line(3.010, "S", "X-b2b_1", 7, "SIP/2.0 200 OK"),
]
LEGS = {"X-b2b_1": "X"}


def test_a_round_crosses_the_unit_to_the_far_end_and_back():
    assert dialog_rounds(CALLER, FAR, LEGS) == {"X": [Round(3.000, 3.005, 3.010, 3.020)]}


def test_a_200_the_unit_made_up_is_no_round():
    # the far end never saw the re-INVITE (the unit answered it itself)
    assert dialog_rounds(CALLER, FAR[:2], LEGS) == {}
    # nor one the far end answered before it was sent (another round's half)
    early = [line(2.0, "R", "X-b2b_1", 7, "INVITE sip:uas SIP/2.0"),
             line(2.1, "S", "X-b2b_1", 7, "SIP/2.0 200 OK")]
    assert dialog_rounds(CALLER, FAR[:2] + early, LEGS) == {}
    # nor a far-end leg of another call
    assert dialog_rounds(CALLER, FAR, {"X-b2b_1": "Y"}) == {}


def test_a_refused_or_unanswered_reinvite_is_no_round():
    refused = CALLER[:4] + [line(3.020, "R", "X", 2, "SIP/2.0 488 Not Acceptable Here")]
    far = FAR[:4] + [line(3.010, "S", "X-b2b_1", 7, "SIP/2.0 488 Not Acceptable Here")]
    assert dialog_rounds(refused, far, LEGS) == {}
    assert dialog_rounds(CALLER[:4], FAR, LEGS) == {}


def test_check_result_status_and_ok():
    assert CheckResult("a", "ok", "", 0.1).ok
    assert not CheckResult("a", "n/a", "slave down", 0.1).ok
    assert CheckResult("a", "failed", "x", 0.1).to_dict()["ok"] is False
    with pytest.raises(ValueError):
        CheckResult("a", "unknown", "", 0)


def test_the_checks_as_one_sub_check():
    ok, na, bad = (CheckResult("one", "ok", "", 0), CheckResult("run", "n/a", "down", 0),
                   CheckResult("two", "failed", "boom", 0))
    assert post_checks.subcheck([ok, na]).status == "ok"
    assert "n/a: run" in post_checks.subcheck([ok, na]).detail
    assert post_checks.subcheck([ok, na, bad]).status == "failed"
    assert post_checks.subcheck([na]).status == "n/a"
    assert post_checks.subcheck([]).status == "unknown"


class FakeTestbed:
    def ip(self, node, net):
        return "10.0.3.32"


class FakePrepared:
    finished = False

    def finish(self, oam):
        self.finished = True


def test_run_marks_not_applicable_and_failed_checks_and_always_finishes():
    def not_here(checks):
        raise post_checks.NotApplicable("host-b is down (container exited)")

    def broken(checks):
        raise AssertionError("call reached far end A, expected B")

    p = FakePrepared()
    results = post_checks._run(FakeTestbed(), p, None, [("fine", lambda c: "did it"), ("n/a", not_here),
                                               ("broken", broken)])
    assert [(r.name, r.status) for r in results] == [("fine", "ok"), ("n/a", "n/a"),
                                                     ("broken", "failed")]
    assert results[1].detail == "host-b is down (container exited)" and p.finished
