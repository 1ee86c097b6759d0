"""The unit's overload rules (emulator/tmedia/overload.py): which new calls are shed, the
stateless 503 built without sippy, and the reactor's beat."""
from __future__ import annotations

from emulator.tmedia.overload import (Admission, Decisions, ReactorBeat, fast_busy, is_shed_ack,
                                     new_invite_call_id)

INVITE = (b"INVITE sip:1000@10.0.0.1:5060 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-1\r\n"
          b"v: SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bK-0\r\n"
          b"From: sipp <sip:sipp@10.0.0.9:5060>;tag=77\r\n"
          b"To: <sip:1000@10.0.0.1:5060>\r\n"
          b"Call-ID: abc@10.0.0.9\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_the_token_bucket_takes_max_cps_a_second_and_sheds_the_rest():
    clock, pending = Clock(), [0]
    a = Admission(100, 50, lambda: pending[0], clock=clock)
    taken = 0
    for _ in range(1000):                 # 400 calls/s offered for 2.5 s
        clock.t += 0.0025
        taken += a.refuse() is None
    assert 240 <= taken <= 275            # 100/s for 2.5 s plus the burst (20)
    assert a.shed == 1000 - taken


def test_too_many_calls_waiting_for_a_route_are_shed_whatever_the_rate():
    clock, pending = Clock(), [50]
    a = Admission(1000, 50, lambda: pending[0], clock=clock)
    clock.t += 1
    assert "waiting for a route" in a.refuse()
    pending[0] = 49
    assert a.refuse() is None


def test_fast_busy_copies_the_transaction_headers_and_tags_the_to():
    resp = fast_busy(INVITE, "overload", "1f").decode()
    head = resp.split("\r\n")
    assert head[0] == "SIP/2.0 503 Service Unavailable (overload)"
    assert head[1:3] == ["Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-1",
                         "Via: SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bK-0"]
    assert "To: <sip:1000@10.0.0.1:5060>;tag=tbshed1f" in head
    assert "Call-ID: abc@10.0.0.9" in head and "CSeq: 1 INVITE" in head
    assert "Retry-After: 1" in head and resp.endswith("Content-Length: 0\r\n\r\n")
    ack = b"ACK sip:1000@10.0.0.1 SIP/2.0\r\nTo: <sip:1000@10.0.0.1>;tag=tbshed1f\r\n\r\n"
    assert is_shed_ack(ack) and not is_shed_ack(ack.replace(b"tbshed", b"other"))


def test_fast_busy_leaves_alone_what_it_must_not_shed_or_cannot_parse():
    assert fast_busy(INVITE.replace(b"To: <sip:1000@10.0.0.1:5060>", b"To: <sip:x>;tag=9"), "o", "1") is None
    assert fast_busy(b"BYE sip:x SIP/2.0\r\n\r\n", "o", "1") is None
    assert fast_busy(b"SIP/2.0 200 OK\r\n\r\n", "o", "1") is None
    assert fast_busy(INVITE.replace(b"Call-ID: abc@10.0.0.9\r\n", b""), "o", "1") is None
    assert fast_busy(b"INVITE \xff\xfe\r\n\r\n", "o", "1") is None


def test_the_reactor_beat_ages_until_the_reactor_runs():
    clock = Clock()
    b = ReactorBeat(clock)
    clock.t += 1.2
    assert abs(b.age() - 1.2) < 1e-9
    b.beat()
    assert b.age() == 0


def test_a_new_invite_before_the_media_relays_were_ever_up_is_left_unanswered():
    """A stack just started (the hot spare given a unit binds its relays then) answered a
    new INVITE with 503 'media relay not ready' for the moment its relays took to come
    online: a chaos run caught one such refusal right after the unit's first call on the
    spare. Before the relays were ever up a new INVITE is now dropped before sippy sees
    it (the caller retransmits); a re-INVITE goes on to sippy; once they were up, a later
    outage is sippy's 503 again, never silence."""
    from emulator.tmedia.sip_stack import FrontUdpServer
    srv = FrontUdpServer.__new__(FrontUdpServer)      # the guard alone, no socket
    srv.queued = srv.done = srv.shed = srv.held = 0
    srv.lag, srv.shedding, srv.media_seen, srv._tag, srv.share = 0.0, False, False, "1", None
    srv.decided, srv.lagging_since = Decisions(), None
    ready, sent, logged = [False], [], []
    srv.media_ready = lambda: ready[0]
    srv.send_to = lambda data, addr: sent.append(data)
    srv.log = logged.append
    src = ("10.0.0.9", 5060)
    assert srv._shed(INVITE, src) is True and sent == []          # dropped, no answer
    reinvite = INVITE.replace(b"To: <sip:1000@10.0.0.1:5060>", b"To: <sip:1000@10.0.0.1:5060>;tag=9")
    assert srv._shed(reinvite, src) is False                       # in a dialog: to sippy
    ready[0] = True
    assert srv._shed(INVITE, src) is False and srv.held == 1       # the retransmission: taken
    assert logged and "1 new INVITEs" in logged[0]
    ready[0] = False
    assert srv._shed(INVITE, src) is False                         # an outage later: sippy's 503


def _door():
    from emulator.tmedia.sip_stack import FrontUdpServer
    srv = FrontUdpServer.__new__(FrontUdpServer)      # the guard alone, no socket
    srv.queued = srv.done = srv.shed = srv.held = 0
    srv.lag, srv.shedding, srv.media_seen, srv._tag, srv.share = 0.0, False, True, "1", None
    srv.decided, srv.lagging_since = Decisions(), None
    sent = []
    srv.send_to = lambda data, addr: sent.append(data)
    srv.log = lambda text: None
    return srv, sent


def test_a_retransmitted_invite_gets_the_answer_its_first_copy_got():
    """The door shed an INVITE's retransmission with a stateless 503 while sippy held
    its first copy, and sippy answered 200 later: the caller saw two final answers, and
    the 200 and its BYE reached the next caller on that port (a matrix run failed on a
    call with no INVITE in its trace). A retransmission now gets its first copy's
    answer, in both directions."""
    srv, sent = _door()
    src = ("10.0.0.9", 5060)
    assert srv._shed(INVITE, src) is False                 # taken: sippy holds it
    srv.queued += 301                                      # now far behind
    assert srv._shed(INVITE, src) is False and sent == []  # its retransmission: to sippy too
    other = INVITE.replace(b"abc@10.0.0.9", b"def@10.0.0.9")
    assert srv._shed(other, src) is True and len(sent) == 1    # a new call: shed
    srv.queued -= 301                                      # caught up
    assert srv._shed(other, src) is True and len(sent) == 2    # its retransmission: shed again
    assert b"503" in sent[1] and b"def@10.0.0.9" in sent[1]


def test_the_call_id_of_a_new_invite_is_read_without_sippy():
    assert new_invite_call_id(INVITE) == b"abc@10.0.0.9"
    assert new_invite_call_id(INVITE.replace(b"Call-ID:", b"i:")) == b"abc@10.0.0.9"
    assert new_invite_call_id(INVITE.replace(b"To: <sip:1000@10.0.0.1:5060>",
                                             b"To: <sip:1000@10.0.0.1:5060>;tag=9")) is None
    assert new_invite_call_id(b"BYE sip:x SIP/2.0\r\nCall-ID: a\r\n\r\n") is None
    assert new_invite_call_id(INVITE.replace(b"Call-ID: abc@10.0.0.9\r\n", b"")) is None


def test_decisions_forget_the_oldest_first():
    d = Decisions()
    for i in range(Decisions.MAX + 1):
        d.put(str(i).encode(), i % 2 == 0)
    assert d.get(b"0") is None and d.get(b"1") is False and d.get(str(Decisions.MAX).encode()) is True


def test_a_reactor_that_lags_sheds_only_when_it_stays_behind():
    """A reactor the machine did not schedule for half a second finds a backlog when it
    runs again, and drains it in tens of ms: shedding at once refused calls through a
    database host's restart (a matrix heal). Lagging with a backlog sheds once it lasts
    LAG_HOLD_S; a backlog past MAX_BACKLOG sheds at once, lag or not."""
    srv, sent = _door()
    clock = Clock()
    srv.clock = clock
    src = ("10.0.0.9", 5060)
    n = iter(range(10**6))

    def invite():
        return INVITE.replace(b"abc@", f"c{next(n)}@".encode())
    srv.lag, srv.queued = 0.6, 150                 # behind after a pause
    assert srv._shed(invite(), src) is False
    clock.t += 0.5
    assert srv._shed(invite(), src) is False       # still draining: not yet overload
    srv.queued = 50                                # drained: the lag alone is no sign
    assert srv._shed(invite(), src) is False and srv.lagging_since is None
    srv.queued = 150
    assert srv._shed(invite(), src) is False
    clock.t += srv.LAG_HOLD_S
    assert srv._shed(invite(), src) is True        # behind for LAG_HOLD_S: shed
    srv.lag, srv.lagging_since, srv.queued = 0.0, None, srv.MAX_BACKLOG + 1
    assert srv._shed(invite(), src) is True        # a flood: at once
    assert len(sent) == 2
