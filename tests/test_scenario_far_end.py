"""The matrix stops the far end once the last BYEs reached it, not after a fixed grace:
never before a BYE the unit answered has arrived, and never waiting for a call lost
with its unit (it never gets one)."""
from harness import scenario
from harness.sipp import CallRecord


class FakeUas:
    def __init__(self):
        self.stopped_with = None

    def stop(self, grace_s):
        self.stopped_with = grace_s


class FakeLoad:
    """The calls as the far end sees them: `late` BYEs arrive on the read after the
    first `arrive_after` reads."""

    def __init__(self, uas, calls, late, arrive_after):
        self.uas, self.records, self.late, self.arrive_after = uas, calls, late, arrive_after
        self.reads = 0

    def calls(self, far_end=None):
        assert far_end is self.uas and self.uas.stopped_with is None, "read after the stop"
        self.reads += 1
        for c in self.records:
            c.far_bye = c.call_id not in self.late or self.reads > self.arrive_after
        return self.records, {}


class FakeHistory:
    def __init__(self):
        self.notes = []

    def event(self, kind, **kw):
        self.notes.append(kw.get("text"))


def call(cid, bye_ok):
    return CallRecord(call_id=cid, answer_t=1.0, bye_sent_t=2.0 if bye_ok else None,
                      bye_ok_t=2.1 if bye_ok else None)


def test_the_far_end_is_stopped_only_once_every_answered_bye_reached_it():
    uas, hist = FakeUas(), FakeHistory()
    calls = [call("a", True), call("b", True), call("lost", False)]
    load = FakeLoad(uas, calls, late={"b"}, arrive_after=3)
    scenario._stop_far_end(uas, [load], hist, isup=False)
    assert load.reads == 4                  # b's BYE came on the 4th read, then the stop
    assert uas.stopped_with is not None and uas.stopped_with < scenario.RECV_TIMEOUT_S
    assert hist.notes == []                 # the lost call was not waited for


def test_a_bye_that_never_comes_is_noted_and_the_far_end_stopped_at_the_deadline(monkeypatch):
    monkeypatch.setattr(scenario, "RECV_TIMEOUT_S", 0.3)
    uas, hist = FakeUas(), FakeHistory()
    load = FakeLoad(uas, [call("a", True)], late={"a"}, arrive_after=10 ** 6)
    scenario._stop_far_end(uas, [load], hist, isup=False)
    assert uas.stopped_with is not None
    assert any("the last BYEs at the far end" in n for n in hist.notes)


def test_with_isup_calls_the_far_end_keeps_its_grace():
    uas, hist = FakeUas(), FakeHistory()
    load = FakeLoad(uas, [call("a", True)], late=set(), arrive_after=0)
    scenario._stop_far_end(uas, [load], hist, isup=True)
    assert uas.stopped_with == scenario.RECV_TIMEOUT_S and load.reads == 0


def test_the_heals_calls_to_the_same_far_end_are_waited_for_too():
    # the heal overlapping the main load's hold sends its calls to the same far end
    uas, hist = FakeUas(), FakeHistory()
    main = FakeLoad(uas, [call("a", True)], late=set(), arrive_after=0)
    heal = FakeLoad(uas, [call("h", True)], late={"h"}, arrive_after=2)
    scenario._stop_far_end(uas, [main, heal], hist, isup=False)
    assert heal.reads == 3 and uas.stopped_with is not None and hist.notes == []
