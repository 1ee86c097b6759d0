"""The system's signalling point spread over two units (emulator/ss7/spread.py), against
the far end (a two-link linkset with ISUP and TCAP, tests/ss7_net.py), all over real
M2PA links and a real mate connection on 127.0.0.1: link 0 ends on tmedia-1, link 1 on
tmedia-2; ISUP and TCAP are active on one unit and standby on the other; a unit crashes
(its sockets closed under it, nothing said) and comes back."""
import socket

import pytest

from emulator.ss7 import isup, m2pa
from emulator.ss7.isup import ANSWERED
from emulator.ss7.mtp3 import Port
from emulator.ss7.spread import ACTIVE, STANDBY, Node as UnitNode
from emulator.ss7.tcap import ACTIVE as DLG_ACTIVE, ENDED
from ss7_net import PC_PSTN, PC_SYS, PROVING_S, Node as FarEnd, thread_errors, wait_for

__all__ = ["thread_errors"]

GROUPS = {"tmedia-1": range(1, 9), "tmedia-2": range(9, 17)}
LOOP = "127.0.0.1"


def unit(name, link_port=0, mate_port=0, connect_to=None, preferred=False, **extra):
    mate = name.replace("1", "x").replace("2", "1").replace("x", "2")
    kw = ({"mate_connect": (LOOP, connect_to)} if connect_to else
          {"mate_listen": (LOOP, mate_port)})
    slc = 0 if name == "tmedia-1" else 1
    return UnitNode(name, mate, PC_SYS, PC_PSTN, slc=slc, mate_slc=1 - slc,
                    link_listen=(LOOP, link_port), groups=GROUPS, preferred=preferred,
                    proving_s=PROVING_S, isup_kw={"answer_after_s": 0},
                    tcap_kw={"first_tid": 0x1000}, log=lambda _m: None, **kw, **extra).start()


def crash(n):
    """The unit is gone at once: its sockets closed, its threads left with nothing to do."""
    n._stopped.set()
    for s in (n._link_server, n._mate_server):
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)      # wakes accept(); close() alone does not
            except OSError:
                pass
            s.close()
    with n.lock:
        mate, n.mate = n.mate, None
        socks = [n.local.sock] if n.local else []
        if n.ls is not None:
            n.ls._stopped.set()
            for t in list(n.ls._timers):
                t.cancel()
    for sock in socks + ([mate.sock] if mate else []):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    n.isup.stop()
    n.tcap.stop()


class System:
    def __init__(self):
        self.u1 = unit("tmedia-1", preferred=True)
        self.u2 = unit("tmedia-2", connect_to=self.u1.mate_port())
        self.far = FarEnd("pstn", PC_PSTN, PC_SYS,
                          [Port(0, connect=(LOOP, self.u1.link_port())),
                           Port(1, connect=(LOOP, self.u2.link_port()))],
                          answer_after_s=0)
        self.nodes = [self.u1, self.u2]

    def active(self):
        return next(n for n in self.nodes if n.role == ACTIVE)

    def ready(self):
        wait_for(lambda: self.far.ls.settled() and any(
            n.role == ACTIVE and n.ls.settled() for n in self.nodes)
            and any(n.role == STANDBY for n in self.nodes), 10,
            "both links in service, one unit active and one standby")

    def stop(self):
        self.far.stop()
        for n in self.nodes:
            n.stop()


@pytest.fixture
def system():
    s = System()
    try:
        s.ready()
        yield s
    finally:
        s.stop()


def answered(s, cic):
    wait_for(lambda: s.far.isup.state(cic) == ANSWERED and s.active().isup.state(cic) == ANSWERED,
             5, f"CIC {cic} answered at both ends")


def test_links_on_both_units_carry_the_load_by_sls_and_the_standby_has_every_circuit(system):
    s = system
    assert (s.u1.role, s.u2.role) == (ACTIVE, STANDBY)          # the preferred unit
    st = s.u2.status()
    assert st["link"]["state"] == m2pa.IN_SERVICE and st["mate_connected"] and st["mtp3"] is None
    cics = [s.far.isup.place_call(f"49301{i:04}") for i in range(8)]     # the far end calls
    cics += [s.u1.isup.place_call(f"49302{i:04}") for i in range(8)]     # the system calls
    assert sorted(cics) == list(range(1, 17))
    for cic in cics:
        answered(s, cic)
    # the standby has every circuit as the active has it
    wait_for(lambda: s.u2.isup.status()["circuits"] == s.u1.isup.status()["circuits"], 5,
             "the standby's circuits replicated")
    links = s.u1.status()["mtp3"]["links"]
    for slc in (0, 1):                        # 16 CICs: 8 SLSs home on each link
        assert links[slc]["traffic_tx"] >= 8 and links[slc]["traffic_rx"] >= 8, links
    assert links[1]["on"] == "the other unit"
    for cic in cics:
        s.far.isup.release(cic)
    wait_for(lambda: s.u1.isup.idle() and s.far.isup.idle(), 5, "all released")
    assert not s.u1.isup.errors and not s.far.isup.errors


def test_the_active_units_crash_keeps_the_calls_of_the_other_units_trunks(system):
    s = system
    cics = [s.far.isup.place_call(f"49301{i:04}") for i in range(16)]
    for cic in cics:
        answered(s, cic)
    tid = s.far.tcap.begin()
    wait_for(lambda: s.far.tcap.state(tid) == DLG_ACTIVE, 5, "the dialogue open")
    sys_tid = s.far.tcap.dialogue(tid).peer_tid
    wait_for(lambda: s.u2.tcap.dialogue(sys_tid) is not None, 5, "the dialogue replicated")
    wait_for(lambda: s.u2.isup.state(16) == ANSWERED, 5, "the circuits replicated")
    crash(s.u1)
    wait_for(lambda: s.u2.role == ACTIVE, 5, "the standby takes over")
    # tmedia-1's trunks are gone: released with cause 41; tmedia-2's calls stay up
    wait_for(lambda: all(s.far.isup.state(c) == "idle" for c in GROUPS["tmedia-1"]), 5,
             "the lost unit's calls released")
    for c in GROUPS["tmedia-1"]:
        assert [x.cause for x in s.far.isup.ended if x.cic == c] == [isup.TEMPORARY_FAILURE]
    assert all(s.far.isup.state(c) == ANSWERED for c in GROUPS["tmedia-2"])
    assert s.u2.isup.status()["groups_down"] == ["tmedia-1"]
    mtp3 = s.u2.status()["mtp3"]
    co = mtp3["changeovers"]
    assert co and co[0]["slc"] == 0 and co[0]["via"] == 1 and co[0]["by"] in ("COO", "COA")
    far = s.far.ls.status()                   # nothing diverted by time, nothing dropped
    assert all(c["discarded"] == 0 for c in co + far["changeovers"]), (co, far["changeovers"])
    assert mtp3["dropped"] == far["dropped"] == 0
    # the kept calls are released normally later, from either side
    s.far.isup.release(9)
    s.u2.isup.release(10)
    wait_for(lambda: s.far.isup.state(9) == s.far.isup.state(10) == "idle", 5, "released")
    # new calls both ways on the surviving unit's trunks
    answered(s, s.far.isup.place_call("4930999", cic=10))
    out = s.u2.isup.place_call("4930777")
    assert out == 9                            # the lost unit's circuits are not offered
    answered(s, out)
    # the dialogue begun before the crash is continued and ended after it
    s.far.tcap.cont(tid)
    wait_for(lambda: s.far.tcap.dialogue(tid).results_received == 2, 5, "the new active answers")
    s.far.tcap.end(tid)
    wait_for(lambda: s.u2.tcap.state(sys_tid) == ENDED, 5, "End at the new active")
    assert not s.u2.isup.errors and not s.u2.tcap.errors
    assert not s.far.isup.errors and not s.far.tcap.errors


def test_the_standby_units_crash_and_return_change_over_and_back(system):
    s = system
    cics = [s.u1.isup.place_call(f"49302{i:04}") for i in range(16)]
    for cic in cics:
        answered(s, cic)
    link_port, mate_port = s.u2.link_port(), s.u1.mate_port()
    crash(s.u2)
    wait_for(lambda: s.u1.status()["mtp3"]["changeovers"], 5, "a changeover on tmedia-1")
    wait_for(lambda: all(s.far.isup.state(c) == "idle" for c in GROUPS["tmedia-2"]), 5,
             "the lost unit's calls released")
    assert all(s.far.isup.state(c) == ANSWERED for c in GROUPS["tmedia-1"])
    assert s.u1.role == ACTIVE
    # every SLS now on link 0; calls still go both ways
    s.far.isup.release(1)
    wait_for(lambda: s.u1.isup.state(1) == "idle", 5, "released over link 0")
    # tmedia-2 comes back: standby, its link aligned again, traffic changed back
    back = unit("tmedia-2", link_port=link_port, connect_to=mate_port)
    s.nodes[1] = back
    wait_for(lambda: back.role == STANDBY and s.u1.ls.settled() and s.far.ls.settled(), 10,
             "tmedia-2 standby, its link back in service")
    assert s.u1.status()["mtp3"]["changebacks"]
    assert s.u1.isup.status()["groups_down"] == []
    wait_for(lambda: back.isup.status()["circuits"] == s.u1.isup.status()["circuits"], 5,
             "the returning standby has every circuit")
    out = s.u1.isup.place_call("4930555", cic=12)
    answered(s, out)
    assert not s.u1.isup.errors and not s.far.isup.errors


def test_a_remote_link_gives_back_what_the_far_end_did_not_accept():
    """The other unit's reports are all a changeover has of its link: the MSUs it sent
    (FSN), the acknowledgements, the MSUs accepted; and those asked for and not sent."""
    import threading
    from emulator.ss7.spread import RemoteLink
    sent = []
    r = RemoteLink("tmedia-2/1", 1, threading.RLock(), {"state": m2pa.IN_SERVICE, "fsn": 9,
                   "acked": 9, "rx": 41, "unacked": [], "waiting": []}, send=sent.append)
    got = []
    r.on_msu = lambda link, msu: got.append(msu)
    for fsn, m in ((10, b"a"), (11, b"b"), (12, b"c")):
        r.send(m)
        r.on_report({"ev": "tx", "fsn": fsn, "msu": m.hex()})
    r.send(b"d")                                   # asked for, not sent yet (window)
    r.on_report({"ev": "ack", "acked": 10})
    r.on_report({"ev": "rx", "fsn": 42, "msu": b"x".hex()})
    assert sent == [b"a", b"b", b"c", b"d"] and got == [b"x"]
    assert r.last_accepted() == 42 and r.unacknowledged() == 3
    states = []
    r.on_state = lambda link, st: states.append(st)
    r.on_report({"ev": "state", "state": m2pa.FAILED, "failure": "connection closed"})
    assert states == [m2pa.FAILED] and r.failed_at is not None
    assert r.retrieve(11) == [b"c", b"d"]          # the far end accepted up to FSN 11
    assert r.unacknowledged() == 0
    with pytest.raises(m2pa.LinkUnavailable):
        r.send(b"e")


def test_the_standby_units_ss7_stack_disabled_is_applied_by_the_active(system):
    """The operator disables tmedia-2's SS7 stack (its board tells its node, the standby):
    the active refuses the far end's new calls on tmedia-2's circuits with cause 63 and
    answers those on tmedia-1's; a call up on tmedia-2's trunk goes on. The flag survives
    a takeover: with tmedia-1 lost, tmedia-2 (now active) still refuses on its own group."""
    s = system
    up = s.far.isup.place_call("4930", cic=9)
    answered(s, up)
    s.u2.set_admit(False)
    wait_for(lambda: s.u1.isup.status()["refusing"] == {"tmedia-2": isup.SERVICE_NOT_AVAILABLE},
             5, "the active applies tmedia-2's flag")
    assert s.u1.status()["ss7_enabled"] == {"tmedia-1": True, "tmedia-2": False}
    s.far.isup.place_call("4930", cic=11)
    wait_for(lambda: [c.cause for c in s.far.isup.ended if c.cic == 11], 5, "the IAM refused")
    assert [c.cause for c in s.far.isup.ended if c.cic == 11] == [isup.SERVICE_NOT_AVAILABLE]
    answered(s, s.far.isup.place_call("4930", cic=2))
    assert s.far.isup.state(up) == ANSWERED
    crash(s.u1)
    wait_for(lambda: s.u2.role == ACTIVE, 5, "tmedia-2 takes over")
    s.far.isup.place_call("4930", cic=13)
    wait_for(lambda: [c.cause for c in s.far.isup.ended if c.cic == 13], 5, "the IAM refused")
    assert [c.cause for c in s.far.isup.ended if c.cic == 13] == [isup.SERVICE_NOT_AVAILABLE]
    s.u2.set_admit(True)
    s.far.isup.place_call("4930", cic=15)
    wait_for(lambda: s.far.isup.state(15) == ANSWERED and s.u2.isup.state(15) == ANSWERED, 5,
             "CIC 15 answered by tmedia-2")       # (the crashed node still says active)
    assert not s.u2.isup.errors and not s.far.isup.errors


# -- the interworking's orders and events across the units ---------------------------------

class FakeIw:
    """What a unit's interworking hears from ISUP (interwork.Interworking.on_isup)."""

    def __init__(self):
        self.events = []

    def on_isup(self, ev, d):
        self.events.append((ev, d.get("cic"), d.get("ref"), d.get("why")))


def test_the_standby_units_calls_are_placed_by_the_active_and_their_events_come_back():
    u1 = unit("tmedia-1", preferred=True, interworking=True)
    u2 = unit("tmedia-2", connect_to=u1.mate_port(), interworking=True)
    u1.iw, u2.iw = FakeIw(), FakeIw()
    u1.isup.answer_after_s = u2.isup.answer_after_s = None     # the SIP side answers
    far = FarEnd("pstn", PC_PSTN, PC_SYS, [Port(0, connect=(LOOP, u1.link_port())),
                                            Port(1, connect=(LOOP, u2.link_port()))],
                 answer_after_s=0)
    try:
        wait_for(lambda: far.ls.settled() and u1.ls is not None and u1.ls.settled()
                 and u2.role == STANDBY, 10, "both links in service, tmedia-2 standby")
        u2.iw_command({"cmd": "place", "group": "tmedia-2", "called": "7720001", "ref": "r1"})
        wait_for(lambda: [e[0] for e in u2.iw.events][:3] == ["iam", "acm", "anm"], 5,
                 "tmedia-2's call placed by the active tmedia-1, its ACM and ANM back")
        cic = u2.iw.events[0][1]
        assert cic in GROUPS["tmedia-2"] and u2.iw.events[0][2] == "r1" and not u1.iw.events
        u2.iw_command({"cmd": "release", "cic": cic, "cause": isup.NORMAL_CLEARING})
        wait_for(lambda: u2.iw.events[-1][0] == "end" and far.isup.state(cic) == isup.IDLE, 5,
                 "released: the far end's circuit idle, the end heard on tmedia-2")
        # the far end's calls: each one's events go to the interworking of its circuit's unit
        cics = [far.isup.place_call("1000") for _ in range(2)]
        for c in cics:
            iw = u1.iw if c in GROUPS["tmedia-1"] else u2.iw
            wait_for(lambda: ("iam", c) in [e[:2] for e in iw.events], 5, f"CIC {c}'s IAM heard")
        u1.iw_command({"cmd": "answer", "cic": cics[0]})
        wait_for(lambda: far.isup.state(cics[0]) == ANSWERED, 5, "answered by the interworking's order")
    finally:
        far.stop()
        u2.stop()
        u1.stop()


def test_orders_wait_for_an_active_node_and_fail_the_call_when_none_comes(monkeypatch):
    from emulator.ss7 import spread
    monkeypatch.setattr(spread, "IW_HOLD_S", 0.3)
    alone = dict(link_listen=(LOOP, 0), groups=GROUPS, proving_s=PROVING_S,
                 mate_connect=(LOOP, 9), log=lambda _m: None, interworking=True)
    # a node that goes active alone soon after: the held order is placed then
    u = UnitNode("tmedia-2", "tmedia-1", PC_SYS, PC_PSTN, slc=1, mate_slc=0,
                 alone_after_s=0.1, **alone)
    u.iw = FakeIw()
    u.iw_command({"cmd": "place", "group": "tmedia-2", "called": "7720001", "ref": "r1"})
    assert not u.iw.events
    u.start()
    try:
        wait_for(lambda: u.iw.events, 2, "the held order carried out")
        assert u.iw.events[0][0] == "iam" and u.iw.events[0][2] == "r1"
    finally:
        u.stop()
    # one that never does: the order expires and the call fails
    u = UnitNode("tmedia-2", "tmedia-1", PC_SYS, PC_PSTN, slc=1, mate_slc=0, **alone)
    u.iw = FakeIw()
    try:
        u.iw_command({"cmd": "place", "group": "tmedia-2", "called": "7720001", "ref": "r2"})
        wait_for(lambda: u.iw.events, 2, "the held order expired")
        assert u.iw.events == [("failed", None, "r2", "no active SS7 node")]
    finally:
        u.stop()
