"""TCAP dialogues (emulator/ss7/tcap.py) in SCCP UDTs over a real two-link M2PA linkset:
Begin, Continue, End with transaction ids, and a dialogue begun with the active system
unit that its standby, restored from a snapshot on its own linkset endpoint, continues and
ends after the active's crash."""
import json

import pytest

from emulator.ss7 import tcap
from emulator.ss7.tcap import ABORTED, ACTIVE, ENDED, INITIATED
from ss7_net import linked_pair, PC_PSTN, PC_SYS, connecting, in_service, listening, thread_errors, wait_for

__all__ = ["thread_errors"]


@pytest.fixture
def pair():
    with linked_pair(None, {"first_tid": 0x1000}) as both:
        yield both


def opened(pstn, system):
    """The far end begins a dialogue; the system answers with its first Continue."""
    tid = pstn.tcap.begin()
    assert pstn.tcap.state(tid) == INITIATED
    wait_for(lambda: pstn.tcap.state(tid) == ACTIVE, 5, "the responder's Continue")
    d = pstn.tcap.dialogue(tid)
    assert d.peer_tid >= 0x1000 and d.results_received == 1      # the Begin's invoke
    return tid, d.peer_tid


def test_the_codecs_are_pycrates_tcap_and_sccp():
    ber = tcap.encode_tcap("begin", {"otid": tcap.tid_bytes(42), "components": [
        tcap.invoke(1, 59)]})
    assert ber[0] == 0x62                                          # [APPLICATION 2] Begin
    kind, body = tcap.decode_tcap(ber)
    assert kind == "begin" and body["otid"] == b"\x00\x00\x00\x2a"
    udt = tcap.encode_udt(PC_SYS, 146, PC_PSTN, 146, ber)
    assert tcap.decode_udt(udt) == (146, 146, ber)
    with pytest.raises(ValueError):
        tcap.decode_tcap(b"\x65\x03\x01")
    with pytest.raises(ValueError):
        tcap.decode_udt(b"\x09\x00")


def test_begin_continue_end_with_transaction_ids(pair):
    system, pstn = pair
    tid, sys_tid = opened(pstn, system)
    assert system.tcap.dialogue(sys_tid).peer_tid == tid
    pstn.tcap.cont(tid)
    wait_for(lambda: pstn.tcap.dialogue(tid).results_received == 2, 5, "result of Continue")
    system.tcap.cont(sys_tid)                                      # the responder asks too
    wait_for(lambda: system.tcap.dialogue(sys_tid).results_received == 1, 5, "its result")
    pstn.tcap.end(tid)
    wait_for(lambda: system.tcap.state(sys_tid) == ENDED, 5, "End at the system")
    assert system.tcap.dialogue(sys_tid).closed_by == "remote"
    assert pstn.tcap.state(tid) == ENDED and not pstn.tcap.dialogues
    assert not system.tcap.errors and not pstn.tcap.errors
    with pytest.raises(ValueError, match="not active"):
        pstn.tcap.cont(tid)


def test_a_continue_for_a_lost_dialogue_is_aborted(pair):
    system, pstn = pair
    tid, sys_tid = opened(pstn, system)
    system.tcap.dialogues.clear()                                  # the system forgot it
    pstn.tcap.cont(tid)
    wait_for(lambda: pstn.tcap.state(tid) == ABORTED, 5, "Abort for an unknown tid")
    assert system.tcap.errors["continue for an unknown transaction"] == 1


@pytest.mark.parametrize("ended_by", ["standby", "far end"])
def test_a_dialogue_begun_before_the_crash_is_continued_and_ended_by_the_standby(ended_by):
    pstn = listening("pstn", PC_PSTN, PC_SYS)
    active = connecting("sys-a", PC_SYS, PC_PSTN, pstn, first_tid=0x1000)
    standby = None
    try:
        in_service(pstn, active)
        tid, sys_tid = opened(pstn, active)
        snap = json.loads(json.dumps(active.tcap.snapshot()))
        active.stop()
        wait_for(lambda: not pstn.ls.settled(), 5, "the far end's links lost")
        standby = connecting("sys-b", PC_SYS, PC_PSTN, pstn)
        standby.tcap.restore(snap)
        in_service(pstn, standby)
        pstn.tcap.cont(tid)                                        # the far end continues
        wait_for(lambda: pstn.tcap.dialogue(tid).results_received == 2, 5,
                 "the standby's answer to the Continue")
        standby.tcap.cont(sys_tid)                                 # and so does the standby
        wait_for(lambda: standby.tcap.dialogue(sys_tid).results_received == 1, 5, "result")
        if ended_by == "standby":
            standby.tcap.end(sys_tid)
            wait_for(lambda: pstn.tcap.state(tid) == ENDED, 5, "End from the standby")
        else:
            pstn.tcap.end(tid)
            wait_for(lambda: standby.tcap.state(sys_tid) == ENDED, 5, "End at the standby")
        assert pstn.tcap.dialogue(tid).closed_by != "abort"
        assert not standby.tcap.errors and not pstn.tcap.errors
        # a new dialogue on the standby takes a tid the active never gave out
        new = standby.tcap.begin()
        assert new > sys_tid
    finally:
        if standby:
            standby.stop()
        active.stop()
        pstn.stop()
