"""ISUP call control (emulator/ss7/isup.py) between two signalling points over a real
two-link M2PA linkset on 127.0.0.1: the system (point code 1001, connects) and the PSTN
far end (2002, listens). Messages are coded by pycrate; the tests read call states and the
timestamps of each ended call."""
import json

import pytest
from pycrate_mobile import ISUP

from emulator.ss7 import isup
from emulator.ss7.isup import ANSWERED, IDLE, RELEASING, RESETTING
from ss7_net import (linked_pair, PC_PSTN, PC_SYS, connecting, in_service, listening, thread_errors,
                     wait_for)

__all__ = ["thread_errors"]


@pytest.fixture
def pair():
    with linked_pair({"answer_after_s": 0}, {"answer_after_s": 0}) as both:
        yield both


def established(a, b, cic):
    wait_for(lambda: a.isup.state(cic) == ANSWERED and b.isup.state(cic) == ANSWERED, 5,
             f"CIC {cic} answered at both ends")


def check_ended(call, direction, released_by, cause=isup.NORMAL_CLEARING):
    assert call.direction == direction and call.released_by == released_by
    assert call.cause == cause and call.outcome == "answered"
    assert call.t_iam <= call.t_acm <= call.t_anm <= call.t_rel <= call.t_rlc


# -- codec ------------------------------------------------------------------------------

def test_messages_round_trip_through_pycrate_odd_numbers_and_causes_intact():
    kind, cic, f = isup.decode(isup.encode_iam(37, "493012345"))
    assert (kind, cic, f["called"]) == (isup.MSG_IAM, 37, "493012345")
    assert isup.decode(isup.encode_iam(5, "4930"))[2]["called"] == "4930"
    rel = isup.encode_rel(37, isup.CIRCUIT_NOT_AVAILABLE)
    assert rel[-2:] == bytes([0x82, 0x80 | 44])             # Q.850: ext set, cause 44
    assert isup.decode(rel)[2]["cause"] == 44
    assert type(ISUP.parse_ISUP(isup.encode(isup.MSG_RLC, 37))[0]).__name__ == "ReleaseComplete"
    with pytest.raises(ValueError):
        isup.decode(b"\x25\x00\x77")


def test_glare_control_follows_the_point_codes():
    a = isup.Isup("a", PC_SYS, PC_PSTN, {"g": range(1, 5)})
    b = isup.Isup("b", PC_PSTN, PC_SYS, {"g": range(1, 5)})
    try:
        assert [a.controls(c) for c in range(1, 5)] == [True, False, True, False]
        assert [b.controls(c) for c in range(1, 5)] == [False, True, False, True]
        with pytest.raises(ValueError, match="two trunk groups"):
            isup.Isup("x", 1, 2, {"g": [1, 2], "h": [2]})
    finally:
        a.stop()
        b.stop()


def test_circuit_hunting_lowest_first_or_random_and_a_group_of_its_own():
    """The seizures of place_call (its IAMs go to a list): the circuits it controls first;
    "lowest" takes them in order, "random" spreads them over both trunk groups."""
    groups = {"g1": range(1, 31), "g2": range(31, 61)}
    x = isup.Isup("x", PC_SYS, PC_PSTN, groups, send=lambda *m: None)
    y = isup.Isup("y", PC_SYS, PC_PSTN, groups, send=lambda *m: None, hunt="random")
    try:
        ours = [c for c in range(1, 61) if x.controls(c)]
        assert [x.place_call("100") for _ in range(10)] == ours[:10]
        got = [y.place_call("100") for _ in range(10)]
        assert set(got) <= set(ours) and len(set(got)) == 10
        assert {y.circuits[c].group for c in got} == {"g1", "g2"}, got
        g2 = x.place_call("100", group="g2")
        assert x.circuits[g2].group == "g2"
        x.set_refusing("g2", isup.SERVICE_NOT_AVAILABLE)
        assert x.place_call("100", group="g2") is None and x.counts["refused"] == 1
    finally:
        x.stop()
        y.stop()
    with pytest.raises(ValueError, match="hunt"):
        isup.Isup("z", 1, 2, {"g": [1]}, hunt="rotate")


# -- calls ------------------------------------------------------------------------------

@pytest.mark.parametrize("caller_is_system", [True, False])
@pytest.mark.parametrize("release_by_caller", [True, False])
def test_basic_call_and_release_from_either_side(pair, caller_is_system, release_by_caller):
    system, pstn = pair
    caller, callee = (system, pstn) if caller_is_system else (pstn, system)
    cic = caller.isup.place_call("4930123457")
    assert caller.isup.controls(cic)                        # it chose a circuit it controls
    established(caller, callee, cic)
    assert callee.isup.call(cic).called == "4930123457"
    releaser, other = (caller, callee) if release_by_caller else (callee, caller)
    assert releaser.isup.release(cic)
    assert releaser.isup.state(cic) == RELEASING
    wait_for(lambda: releaser.ended(cic) and other.ended(cic), 5, "the call ended at both")
    check_ended(caller.ended(cic)[0], "out", "local" if release_by_caller else "remote")
    check_ended(callee.ended(cic)[0], "in", "remote" if release_by_caller else "local")
    assert caller.isup.idle() and callee.isup.idle()
    assert not system.isup.errors and not pstn.isup.errors


def test_calls_on_every_circuit_spread_over_both_links(pair):
    system, pstn = pair
    cics = [system.isup.place_call(f"49301{i:04}") for i in range(16)]
    assert sorted(cics) == list(range(1, 17))
    for cic in cics:
        established(system, pstn, cic)
    assert system.isup.place_call("4930") is None           # every circuit busy
    for cic in cics:
        pstn.isup.release(cic)
    wait_for(lambda: len(system.isup.ended) == 16 and system.isup.idle(), 5, "all released")
    links = system.ls.status()["links"]
    assert all(links[s]["traffic_tx"] >= 16 for s in (0, 1)), links


def test_glare_the_controlling_side_keeps_the_circuit_the_other_reattempts(pair):
    system, pstn = pair
    cic = 4                 # even: the PSTN (the higher point code) controls it
    # both seize at once; neither IAM can have arrived before the other was sent
    with system.isup.lock, pstn.isup.lock:
        system.isup.place_call("111", cic=cic)
        pstn.isup.place_call("222", cic=cic)
    established(pstn, system, cic)
    assert pstn.isup.call(cic).direction == "out" and pstn.isup.call(cic).called == "222"
    assert system.isup.counts["glare lost"] == 1 and pstn.isup.counts["glare won"] == 1
    lost = system.ended(cic)[0]
    assert lost.outcome == "glare" and lost.direction == "out"
    # the system's call went again on another circuit, one it controls, and got through
    again = wait_for(lambda: [c for c, circ in system.isup.circuits.items()
                              if circ.call and circ.call.reattempt_of == cic], 5, "reattempt")
    assert again[0] != cic and system.isup.controls(again[0])
    established(system, pstn, again[0])
    assert pstn.isup.call(again[0]).called == "111"


def test_rel_is_repeated_until_rlc_then_reset_after_t5(pair):
    system, pstn = pair
    system.isup.t1_s, system.isup.t5_s = 0.2, 0.7
    cic = system.isup.place_call("4930")
    established(system, pstn, cic)
    # the far end's RLCs are lost: it answers REL, but nothing of it reaches us
    pstn.isup.send_msu = lambda si, sls, sif: None
    system.isup.release(cic)
    wait_for(lambda: system.isup.counts["T1 expired"] >= 2, 3, "REL repeated by T1")
    wait_for(lambda: system.isup.state(cic) == RESETTING, 3, "RSC after T5")
    assert pstn.isup.counts["rx_REL"] >= 3 and pstn.isup.state(cic) == IDLE
    # the far end speaks again: its RLC for our RSC frees the circuit
    pstn.isup.send_msu = pstn.ls.send
    wait_for(lambda: system.isup.state(cic) == IDLE, 3, "idle after the RSC's RLC")
    call = system.ended(cic)[0]
    assert call.rel_sent >= 3 and call.t_rlc and call.released_by == "local"


def test_a_trunk_group_down_refuses_its_iams_and_releases_its_calls(pair):
    system, pstn = pair
    busy = pstn.isup.place_call("4930", cic=10)             # unit2's trunk
    established(pstn, system, busy)
    system.isup.set_group_down("unit2")
    wait_for(lambda: pstn.ended(busy), 5, "unit2's call released")
    assert pstn.ended(busy)[0].cause == isup.TEMPORARY_FAILURE
    # the released circuit is down once our REL's RLC is back (the far end ends first)
    wait_for(lambda: system.isup.status()["states"].get("down") == 8, 5, "unit2's 8 circuits down")
    st = system.isup.status()
    assert st["groups_down"] == ["unit2"] and st["states"]["down"] == 8
    assert st["circuits"][12] == "down" and st["circuits"][1] == "idle"
    # the far end got CGB for the 8 circuits and acknowledged it: it calls on unit1's only
    wait_for(lambda: pstn.isup.status()["states"].get("blocked") == 8
             and system.isup.counts["rx_CGBA"] == 1, 5, "8 blocked at the far end, acknowledged")
    assert system.isup.counts["tx_CGB"] == 1
    own = pstn.isup.place_call("4930")
    assert own in range(1, 9)
    established(pstn, system, own)
    pstn.isup.release(own)
    wait_for(lambda: pstn.isup.state(own) == "idle", 5, "released")
    pstn.isup.place_call("4930", cic=12)                    # an IAM that crossed the CGB
    wait_for(lambda: pstn.ended(12), 5, "the IAM on a down circuit refused")
    refused = pstn.ended(12)[0]
    assert refused.cause == isup.CIRCUIT_NOT_AVAILABLE and refused.outcome == "unanswered"
    # the system never picks a down circuit, and unit1's still carry calls
    cics = [system.isup.place_call("4930") for _ in range(8)]
    assert sorted(cics) == list(range(1, 9)) and system.isup.place_call("4930") is None
    established(system, pstn, 3)
    system.isup.set_group_down("unit2", False)
    assert system.isup.place_call("4930") in range(9, 17)
    wait_for(lambda: not pstn.isup.blocked and system.isup.counts["rx_CGUA"] == 1, 5,
             "CGU unblocked them at the far end, acknowledged")
    assert not pstn.isup.errors and not system.isup.errors


def test_group_messages_round_trip_through_pycrate():
    b = isup.encode_group(isup.MSG_CGB, 9, [9, 10, 12, 40])
    assert isup.decode(b) == (isup.MSG_CGB, 9, {"cics": [9, 10, 12, 40]})
    assert isup.group_ranges([1, 2, 40, 41, 33, 80]) == [(1, [1, 2]), (33, [33, 40, 41]), (80, [80])]
    with pytest.raises(ValueError):
        isup.encode_group(isup.MSG_CGU, 1, [1, 33])


# -- switchover: the standby restores the snapshot on its own linkset endpoint ----------

@pytest.fixture
def switchover():
    """The far end listens; the active system unit connects, a call is answered, its
    snapshot is taken, the active 'crashes' (its linkset and ISUP stopped), and a standby
    with the snapshot connects to the same far end on its own links."""
    pstn = listening("pstn", PC_PSTN, PC_SYS, answer_after_s=0)
    active = connecting("sys-a", PC_SYS, PC_PSTN, pstn, answer_after_s=0)
    standby = None
    try:
        in_service(pstn, active)
        cic = active.isup.place_call("4930111")
        established(active, pstn, cic)
        snap = json.loads(json.dumps(active.isup.snapshot()))   # as it would travel
        active.stop()
        wait_for(lambda: not pstn.ls.settled(), 5, "the far end's links lost")
        standby = connecting("sys-b", PC_SYS, PC_PSTN, pstn, answer_after_s=0)
        standby.isup.restore(snap)
        in_service(pstn, standby)
        assert standby.isup.state(cic) == ANSWERED and pstn.isup.state(cic) == ANSWERED
        yield active, standby, pstn, cic
    finally:
        if standby:
            standby.stop()
        pstn.stop()


def test_after_switchover_the_standby_releases_the_answered_call(switchover):
    _, standby, pstn, cic = switchover
    assert standby.isup.release(cic)
    wait_for(lambda: pstn.ended(cic) and standby.ended(cic), 5, "released after switchover")
    check_ended(standby.ended(cic)[0], "out", "local")
    check_ended(pstn.ended(cic)[0], "in", "remote")
    assert not standby.isup.errors and not pstn.isup.errors


def test_after_switchover_the_far_ends_rel_gets_rlc_and_new_iams_are_accepted(switchover):
    _, standby, pstn, cic = switchover
    assert pstn.isup.release(cic)
    wait_for(lambda: pstn.ended(cic) and standby.ended(cic), 5, "released by the far end")
    check_ended(pstn.ended(cic)[0], "in", "local")
    check_ended(standby.ended(cic)[0], "out", "remote")
    new = pstn.isup.place_call("4930222")
    established(pstn, standby, new)
    assert standby.isup.call(new).called == "4930222"


def test_a_release_in_progress_at_the_crash_is_finished_by_the_standby():
    pstn = listening("pstn", PC_PSTN, PC_SYS, answer_after_s=0)
    active = connecting("sys-a", PC_SYS, PC_PSTN, pstn, answer_after_s=0)
    standby = None
    try:
        in_service(pstn, active)
        cic = active.isup.place_call("4930")
        established(active, pstn, cic)
        pstn.isup.send_msu = lambda si, sls, sif: None      # the RLC never comes back
        active.isup.release(cic)
        snap = active.isup.snapshot()
        assert snap["circuits"][cic - 1]["state"] == RELEASING
        active.stop()
        pstn.isup.send_msu = pstn.ls.send
        standby = connecting("sys-b", PC_SYS, PC_PSTN, pstn)
        standby.isup.restore(snap)                          # REL sent again at once
        wait_for(lambda: standby.isup.state(cic) == IDLE, 5, "the RLC at the standby")
        assert standby.ended(cic)[0].released_by == "local"
    finally:
        if standby:
            standby.stop()
        active.stop()
        pstn.stop()


def test_incremental_updates_rebuild_the_same_state():
    a = isup.Isup("a", PC_SYS, PC_PSTN, {"g": range(1, 5)})
    b = isup.Isup("b", PC_SYS, PC_PSTN, {"g": range(1, 5)})
    a.on_update = b.apply
    try:
        a.place_call("4930", cic=1)                          # no linkset: counted, kept
        a.place_call("4931", cic=3)
        a.release(3)
        assert b.snapshot() == a.snapshot()
        assert b.circuits[1].timer is None                   # a standby waits for nothing
    finally:
        a.stop()
        b.stop()


def test_a_refusing_trunk_group_releases_new_iams_with_cause_63_and_keeps_its_calls(pair):
    """The operator's SS7 stack disabled on a unit: new calls on its trunk group are
    released at once (REL 63, service not available), a call up on it goes on, the other
    group is untouched; enabled again, its calls are answered."""
    system, pstn = pair
    up = pstn.isup.place_call("4930", cic=10)               # unit2's trunk
    established(pstn, system, up)
    system.isup.set_refusing("unit2", isup.SERVICE_NOT_AVAILABLE)
    pstn.isup.place_call("4930", cic=12)
    wait_for(lambda: pstn.ended(12), 5, "the IAM on the refusing group released")
    refused = pstn.ended(12)[0]
    assert (refused.cause, refused.outcome) == (isup.SERVICE_NOT_AVAILABLE, "unanswered")
    assert system.isup.state(10) == ANSWERED and system.isup.counts["refused"] == 1
    assert system.isup.status()["refusing"] == {"unit2": isup.SERVICE_NOT_AVAILABLE}
    own = pstn.isup.place_call("4930", cic=2)               # unit1's trunk: answered
    established(pstn, system, own)
    system.isup.set_refusing("unit2", None)
    pstn.isup.place_call("4930", cic=14)
    established(pstn, system, 14)
    with pytest.raises(ValueError):
        system.isup.set_refusing("unit9", isup.SERVICE_NOT_AVAILABLE)
    assert not pstn.isup.errors and not system.isup.errors
