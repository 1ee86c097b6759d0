"""The SIP-ISUP interworking's call logic (emulator/ss7/interwork.py) and its cause
mapping (causes.py), without sockets: sippy's user agents are fakes that record the
events the interworking gives them, ISUP's orders are recorded, and its events are fed
in as the active node sends them. The ss7 variant's tests run it for real."""
from __future__ import annotations

import pytest
from sippy.CCEvents import CCEventConnect, CCEventDisconnect, CCEventFail, CCEventRing, CCEventTry

from emulator.ss7 import causes, interwork
from emulator.ss7.isup import NORMAL_CLEARING, SERVICE_NOT_AVAILABLE, TEMPORARY_FAILURE


class FakeUA:
    def __init__(self, *args, **kwargs):
        self.events = []

    def recvEvent(self, event):
        self.events.append(event)

    def kinds(self):
        return [(type(e).__name__, e.getData()[0] if isinstance(e, (CCEventFail, CCEventRing,
                                                                   CCEventConnect)) else None)
                for e in self.events]


@pytest.fixture
def iw(monkeypatch):
    monkeypatch.setattr(interwork.ED2, "callFromThread", lambda fn, *a: fn(*a))
    monkeypatch.setattr(interwork, "UA", FakeUA)
    orders: list[dict] = []
    w = interwork.Interworking("tmedia-2", "127.0.0.1", 5070, ("127.0.0.1", 5060),
                               orders.append, log=lambda line: None)
    return w, orders


def sip_call(w, called="7712345"):
    """An INVITE from the unit's SIP stack, as sippy's UA hands it up."""
    ua = FakeUA()
    w._new("sip-isup", ua)
    w._sip_event(CCEventTry((None, "sipp", called, None, None, None)), ua)
    return ua


def test_a_sip_call_becomes_an_iam_acm_rings_anm_answers_and_the_callers_bye_releases(iw):
    w, orders = iw
    ua = sip_call(w)
    assert orders == [{"cmd": "place", "group": "tmedia-2", "called": "7712345", "ref": "tmedia-2:1"}]
    w.on_isup("iam", {"direction": "out", "ref": "tmedia-2:1", "cic": 33})
    w.on_isup("acm", {"direction": "out", "ref": "tmedia-2:1", "cic": 33})
    w.on_isup("anm", {"direction": "out", "ref": "tmedia-2:1", "cic": 33})
    assert ua.kinds() == [("CCEventRing", 180), ("CCEventConnect", 200)]
    assert "m=audio 9 " in str(ua.events[1].getData()[2])    # no TDM media: discard port
    w._sip_event(CCEventDisconnect(), ua)                       # the caller's BYE
    assert orders[-1] == {"cmd": "release", "cic": 33, "cause": NORMAL_CLEARING}
    w.on_isup("end", {"direction": "out", "ref": "tmedia-2:1", "cic": 33, "released_by": "local",
                      "cause": NORMAL_CLEARING, "outcome": "answered"})
    assert len(ua.events) == 2                                 # nothing more to the caller
    assert not w.by_cic and not w.by_ref


@pytest.mark.parametrize("cause, code", [(17, 486), (1, 404), (TEMPORARY_FAILURE, 503),
                                         (102, 504), (SERVICE_NOT_AVAILABLE, 503)])
def test_the_far_ends_rel_before_the_answer_is_the_final_response_rfc_3398_maps_it_to(iw, cause, code):
    w, orders = iw
    ua = sip_call(w)
    w.on_isup("iam", {"direction": "out", "ref": "tmedia-2:1", "cic": 33})
    w.on_isup("end", {"direction": "out", "ref": "tmedia-2:1", "cic": 33, "released_by": "remote",
                      "cause": cause, "outcome": "unanswered"})
    assert ua.kinds() == [("CCEventFail", code)]
    assert f"ISUP cause {cause}" in ua.events[0].getData()[1]
    assert len(orders) == 1                                    # no REL of ours


def test_the_far_ends_rel_after_the_answer_is_a_bye(iw):
    w, orders = iw
    ua = sip_call(w)
    for ev in ("iam", "anm"):
        w.on_isup(ev, {"direction": "out", "ref": "tmedia-2:1", "cic": 33})
    w.on_isup("end", {"direction": "out", "ref": "tmedia-2:1", "cic": 33, "released_by": "remote",
                      "cause": NORMAL_CLEARING})
    assert ua.kinds() == [("CCEventConnect", 200), ("CCEventDisconnect", None)]


def test_a_caller_gone_before_the_iam_left_releases_the_circuit_once_it_is_seized(iw):
    w, orders = iw
    ua = sip_call(w)
    w._sip_event(CCEventDisconnect(), ua)                       # CANCEL, the order still on its way
    assert [o["cmd"] for o in orders] == ["place"]
    w.on_isup("iam", {"direction": "out", "ref": "tmedia-2:1", "cic": 35})
    assert orders[-1] == {"cmd": "release", "cic": 35, "cause": NORMAL_CLEARING}


def test_no_circuit_or_a_refusing_group_is_503_and_a_glare_moves_the_call(iw):
    w, orders = iw
    ua = sip_call(w)
    w.on_isup("failed", {"direction": "out", "ref": "tmedia-2:1", "why": "no circuit"})
    assert ua.kinds() == [("CCEventFail", 503)] and "no ISUP circuit" in ua.events[0].getData()[1]
    ua = sip_call(w)
    w.on_isup("failed", {"direction": "out", "ref": "tmedia-2:2", "why": "refusing"})
    assert ua.events[0].getData()[:2] == (503, "Service Unavailable (SS7 stack disabled)")
    ua = sip_call(w)
    w.on_isup("iam", {"direction": "out", "ref": "tmedia-2:3", "cic": 34})
    w.on_isup("end", {"direction": "out", "ref": "tmedia-2:3", "cic": 34, "outcome": "glare",
                      "released_by": None})
    w.on_isup("iam", {"direction": "out", "ref": "tmedia-2:3", "cic": 36})   # re-attempted
    assert set(w.by_cic) == {36}
    w.on_isup("anm", {"direction": "out", "ref": "tmedia-2:3", "cic": 36})
    w._sip_event(CCEventDisconnect(), ua)
    assert ua.kinds() == [("CCEventConnect", 200)]
    assert orders[-1] == {"cmd": "release", "cic": 36, "cause": NORMAL_CLEARING}


def test_the_far_ends_iam_becomes_an_invite_200_answers_and_its_rel_is_a_bye(iw):
    w, orders = iw
    w.on_isup("iam", {"direction": "in", "cic": 40, "called": "1000"})
    ua = w.by_cic[40].ua
    (try_,) = ua.events
    assert isinstance(try_, CCEventTry) and try_.getData()[2] == "1000"
    w._sip_event(CCEventRing((180, "Ringing", None)), ua)
    w._sip_event(CCEventConnect((200, "OK", None)), ua)
    assert orders == [{"cmd": "answer", "cic": 40}]
    w.on_isup("end", {"direction": "in", "cic": 40, "released_by": "remote", "cause": NORMAL_CLEARING})
    assert isinstance(ua.events[-1], CCEventDisconnect)
    assert not w.by_cic


@pytest.mark.parametrize("code, cause", [(486, 17), (404, 1), (503, 41), (408, 102), (480, 18)])
def test_a_sip_failure_of_the_far_ends_call_is_a_rel_with_the_cause_rfc_3398_maps_it_to(iw, code, cause):
    w, orders = iw
    w.on_isup("iam", {"direction": "in", "cic": 41, "called": "1000"})
    ua = w.by_cic[41].ua
    w._sip_event(CCEventFail((code, "x")), ua)
    assert orders == [{"cmd": "release", "cic": 41, "cause": cause}]


def test_the_cause_tables_and_their_defaults():
    assert causes.sip_code(34) == 503 and causes.sip_code(28) == 484
    assert causes.sip_code(95) == 400 and causes.sip_code(9) == 480     # by class
    assert causes.isup_cause(603) == 21 and causes.isup_cause(499) == causes.NORMAL_UNSPECIFIED
    for bad in (-1, 128):
        with pytest.raises(ValueError):
            causes.sip_code(bad)
    with pytest.raises(ValueError):
        causes.isup_cause(200)


def test_a_new_iam_on_a_circuit_whose_last_call_never_ended_here_is_served(iw):
    """An end lost on the way (the mate connection cut at that moment) must not leave the
    circuit unanswerable: the old SIP side is ended and the new call goes through."""
    w, orders = iw
    w.on_isup("iam", {"direction": "in", "cic": 42, "called": "1000"})
    old = w.by_cic[42].ua
    w._sip_event(CCEventConnect((200, "OK", None)), old)
    w.on_isup("iam", {"direction": "in", "cic": 42, "called": "1001"})
    assert isinstance(old.events[-1], CCEventDisconnect)
    new = w.by_cic[42].ua
    assert new is not old and new.events[0].getData()[2] == "1001"
    assert w.by_ua.get(id(old)) is None or w.by_ua[id(old)].sip_done
