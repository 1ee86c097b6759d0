"""The TMedia units on the running testbed (issue 4): three boards, two serving and one
spare; redundant control; bonded VoIP ports; on-board monitoring and the watchdog;
N+1 takeover; malformed SIP. Real SIPp calls through the units throughout."""
from __future__ import annotations

import os
import time

import pytest

from harness.faults import (HostPowerOff, NetworkCut, PortDown, Timers, UnitAppFault, placement, restore_placement,
                            unit_status, wait_for)
from harness.media import MediaCapture
from harness.calls import bad, run_calls, wait_established
from harness.testbed import BOARDS, log


def status(tb):
    return tb.oam(tb.master(), "/api/v1/status")


@pytest.fixture(scope="module", autouse=True)
def original_placement(testbed):
    """Tests that move a unit to the spare put it back at the end, so that later tests
    find tmedia-1 and tmedia-2 on their own boards."""
    yield
    restore_placement(testbed)


def test_three_units_two_serve_one_is_spare_all_under_control(testbed):
    st = status(testbed)
    assert st["services"] == {"tmedia-1": "tmedia-1", "tmedia-2": "tmedia-2"}
    for b in BOARDS:
        info = st["units"][b]
        s = info["status"]
        assert info["held"] and s["controller"] == testbed.master(), (b, info)
        assert s["bond"]["up"] and s["bond"]["active_port"] in ("vp1", "vp2"), s["bond"]
        assert s["watchdog"]["armed"] and s["watchdog"]["timeout_s"] > 1.5   # > the lease
    assert st["units"]["tmedia-3"]["status"]["spare"] is True
    assert st["units"]["tmedia-3"]["status"]["app"] is None
    calls = run_calls(testbed, "unit2", unit="tmedia-2", rate=5, hold_s=1, calls=5)
    assert len(calls) == 5 and not bad(calls)
    assert unit_status(testbed, "tmedia-2")["calls_answered"] >= 5


@pytest.mark.parametrize("net", ["ctrl-a", "ctrl-b"])
def test_losing_one_control_network_to_a_unit_changes_nothing(testbed, faults, net):
    before = unit_status(testbed, "tmedia-1")

    def cut_ctrl_a(uac):
        wait_established(uac, 3)
        faults.inject(NetworkCut(testbed, host="tmedia-1", nets=(net,)))
        # an observation window, not a wait: longer than the lease and the fence time
        # (the watchdog would need both networks), during which nothing may change
        time.sleep(4)
        st = status(testbed)
        assert st["units"]["tmedia-1"]["held"], st["units"]["tmedia-1"]
        assert st["services"]["tmedia-1"] == "tmedia-1"
    calls = run_calls(testbed, f"ctrlcut-{net}", during=cut_ctrl_a, rate=5, hold_s=2, duration_s=6)
    assert not bad(calls)
    after = unit_status(testbed, "tmedia-1")
    assert after["boots"] == before["boots"] and after["serves"] == "tmedia-1"


def test_bond_port_failover_keeps_calls_with_their_media(testbed, faults):
    before = unit_status(testbed, "tmedia-1")["bond"]
    fault = PortDown(testbed, unit="tmedia-1")
    cap = MediaCapture(testbed, "sipp-uas", [testbed.ip("tmedia-1", n) for n in ("voip", "vlan101", "vlan102")],
                       "bond-failover")

    def port_down(uac):
        wait_established(uac, 12)        # 5 calls/s held 5 s
        faults.inject(fault)
        wait_for(lambda: unit_status(testbed, "tmedia-1")["bond"]["failovers"] > before["failovers"],
                 5, "the bond to fail over")
    with cap:
        calls = run_calls(testbed, "bondfail", during=port_down, rate=5, hold_s=5, calls=30)
    after = unit_status(testbed, "tmedia-1")["bond"]
    assert after["active_port"] != fault.resolved and after["failovers"] == before["failovers"] + 1
    assert after["ports"][fault.resolved] == "down"
    established = [c for c in calls if c.answer_t and c.answer_t < fault.injected_at]
    assert len(established) >= 10, "too few calls established before the fault"
    assert not bad(calls), "a call was dropped or refused across the port failover"
    streams = cap.around(fault.injected_at)
    assert len(streams) >= 10, f"only {len(streams)} media streams ran across the fault"
    gaps = sorted(s.largest_gap_s for s in streams)
    log(f"bond failover media interruption: largest gap per stream min {gaps[0] * 1000:.0f} ms, "
        f"median {gaps[len(gaps) // 2] * 1000:.0f} ms, max {gaps[-1] * 1000:.0f} ms "
        f"({len(streams)} streams)")
    assert gaps[-1] < 1.0, f"media interrupted {gaps[-1]:.3f} s by a port failover"
    assert all(s.packets > 100 for s in streams)


def test_both_ports_down_the_spare_takes_over_and_answers_calls(testbed, faults):
    boots = unit_status(testbed, "tmedia-3")["boots"]
    t0 = time.time()
    faults.inject(PortDown(testbed, unit="tmedia-1", port="vp1"))
    faults.inject(PortDown(testbed, unit="tmedia-1", port="vp2"))
    wait_for(lambda: placement(testbed)["tmedia-1"] == "tmedia-3", 15, "tmedia-3 to serve tmedia-1")
    # new calls to tmedia-1's address are answered again (by the spare's SIP application)
    wait_for(lambda: unit_status(testbed, "tmedia-3").get("rtp_packets") is not None, 20,
             "the SIP application on tmedia-3")
    answered_at = time.time()
    log(f"N+1 (both ports down): tmedia-1 served by tmedia-3 after {answered_at - t0:.2f} s")
    calls = run_calls(testbed, "spare", rate=5, hold_s=1, calls=5)
    assert not bad(calls)
    st = status(testbed)["units"]
    assert st["tmedia-1"]["status"]["bond"]["up"] is False and st["tmedia-1"]["status"]["serves"] is None
    assert st["tmedia-3"]["status"]["calls_answered"] >= 5 and st["tmedia-3"]["status"]["boots"] == boots


def test_unit_killed_its_address_moves_to_the_spare_and_it_returns_as_spare(testbed, faults):
    holder = placement(testbed)["tmedia-2"]
    spare = next(b for b in BOARDS if b not in placement(testbed).values())
    fault = HostPowerOff(testbed, host=holder)
    faults.inject(fault)
    wait_for(lambda: placement(testbed)["tmedia-2"] == spare, 20, f"{spare} to serve tmedia-2")

    def answered():
        calls = run_calls(testbed, f"n1-{int(time.time() * 10) % 100000}", unit="tmedia-2",
                          rate=2, hold_s=0.5, calls=1, recv_timeout_s=2)
        return not bad(calls)
    wait_for(answered, 30, "a call through tmedia-2's address to be answered", interval=0.2)
    log(f"N+1 (unit powered off): new calls to tmedia-2 answered "
        f"{time.time() - fault.injected_at:.2f} s after the power-off")
    fault.heal()        # the board comes back: it must become the spare
    wait_for(lambda: (status(testbed)["units"][holder].get("state") == "up"), 30, f"{holder} back")
    s = unit_status(testbed, holder)
    assert s["spare"] is True and placement(testbed)["tmedia-2"] == spare


def test_crashed_sip_application_reboots_the_unit_and_it_is_configured_again(testbed, faults):
    board = placement(testbed)["tmedia-1"]
    before = unit_status(testbed, board)
    faults.inject(UnitAppFault(testbed, unit=board, sig="KILL"))
    wait_for(lambda: (s := unit_status(testbed, board)).get("boots") == before["boots"] + 1 and s,
             30, f"{board} to reboot")
    wait_for(lambda: (s := unit_status(testbed, board)).get("config") is not None and s, 20,
             f"{board} configured again")
    s = unit_status(testbed, board)
    assert "crashed" in s["last_reboot"]["reason"]
    testbed.wait_healthy(30, quiet=True)
    calls = run_calls(testbed, "aftercrash", rate=5, hold_s=1, calls=5)
    assert not bad(calls)


def test_deadlocked_sip_application_reboots_the_unit(testbed, faults):
    board = placement(testbed)["tmedia-2"]
    before = unit_status(testbed, board)
    faults.inject(UnitAppFault(testbed, unit=board, sig="STOP"))
    wait_for(lambda: unit_status(testbed, board).get("boots") == before["boots"] + 1, 30,
             f"{board} to reboot")
    assert "deadlocked" in unit_status(testbed, board)["last_reboot"]["reason"]


def test_watchdog_reboots_a_unit_no_host_polls(testbed, faults):
    board = placement(testbed)["tmedia-1"]
    before = unit_status(testbed, board)
    cut = NetworkCut(testbed, host=board, nets=("ctrl-a", "ctrl-b"))
    faults.inject(cut)
    # the unit's reboot clears the cut (new network namespace): it comes back polled
    wait_for(lambda: unit_status(testbed, board).get("boots") == before["boots"] + 1, 30,
             f"{board} to reboot")
    s = unit_status(testbed, board)
    assert s["last_reboot"]["reason"].startswith("watchdog"), s["last_reboot"]
    assert s["last_reboot"]["at"] - cut.injected_at >= s["watchdog"]["timeout_s"] - 0.5


def test_polling_back_in_time_the_watchdog_does_nothing(testbed, faults):
    board = placement(testbed)["tmedia-1"]
    before = unit_status(testbed, board)
    cut = NetworkCut(testbed, host=board, nets=("ctrl-a", "ctrl-b"))

    def short_cut(uac):
        wait_established(uac, 8)
        faults.inject(cut)
        # the fault's length: half the fence (a board polled by nobody gives up its
        # addresses after it), far from the watchdog
        time.sleep(Timers.from_env(os.environ).fence_s / 2)
        cut.heal()
    calls = run_calls(testbed, "shortcut", during=short_cut, rate=5, hold_s=4, calls=15)
    established = [c for c in calls if c.answer_t and c.answer_t < cut.injected_at]
    assert established and all(c.outcome == "completed" and c.far_bye for c in established), \
        [(c.call_id, c.outcome) for c in established]
    wait_for(lambda: status(testbed)["units"][board]["held"], 10, f"{board} polled again")
    after = unit_status(testbed, board)
    assert after["boots"] == before["boots"] and after["serves"] == "tmedia-1"


def test_a_host_switchover_never_trips_the_watchdog(testbed, faults):
    boots = {b: unit_status(testbed, b)["boots"] for b in BOARDS}
    master = testbed.master()
    faults.inject(HostPowerOff(testbed, host=master))
    wait_for(lambda: testbed.roles().get(next(h for h in ("host-a", "host-b") if h != master)) == "active",
             20, "the switchover")
    time.sleep(6)     # observation window past the watchdog timeout (5 s): a trip would be a reboot
    after = {b: unit_status(testbed, b)["boots"] for b in BOARDS}
    assert after == boots


def test_malformed_sip_gets_its_rfc_answer_or_is_dropped_and_calls_go_on(testbed):
    from harness.malformed_sip import EXPECT, send_all
    boots = unit_status(testbed, "tmedia-1")["boots"]
    target = testbed.ip("tmedia-1", "voip")
    results = send_all(target)
    for case, reply in results.items():
        if case in EXPECT:      # answered, with the code the RFC gives it
            assert reply is not None and reply.startswith(f"SIP/2.0 {EXPECT[case]} "), (case, reply)
        else:
            assert reply is None or reply.startswith("SIP/2.0 400"), (case, reply)
    calls = run_calls(testbed, "aftermalformed", rate=5, hold_s=1, calls=5)
    assert not bad(calls)
    assert unit_status(testbed, "tmedia-1")["boots"] == boots      # nothing crashed
