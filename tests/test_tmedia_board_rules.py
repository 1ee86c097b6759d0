"""The unit's board rules without a container: the bond's port selection
(emulator/tmedia/ports.py), the watchdog and the on-board process monitor
(emulator/tmedia/monitor.py), with a fake clock."""
from __future__ import annotations

import socket
import struct

from emulator.tmedia.monitor import AppWatch, Watchdog
from emulator.tmedia.ports import Bond, BondLogic, garp_frame, unit_mac


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_bond_takes_the_first_port_with_link_and_keeps_it():
    b = BondLogic()
    assert b.update({"vp1": True, "vp2": True}) == "vp1"
    assert b.update({"vp1": True, "vp2": False}) is None
    assert b.status() == {"up": True, "active_port": "vp1", "failovers": 0,
                          "ports": {"vp1": "up", "vp2": "down"}}


def test_bond_fails_over_and_does_not_fail_back():
    b = BondLogic()
    b.update({"vp1": True, "vp2": True})
    assert b.update({"vp1": False, "vp2": True}) == "vp2"
    assert b.failovers == 1
    assert b.update({"vp1": True, "vp2": True}) is None      # vp1 back: stay on vp2
    assert b.active == "vp2"


def test_bond_failover_is_one_tc_batch_clearing_first_then_both_redirects():
    # every redirect goes before the new ones (a stale one would duplicate frames), and
    # down leaves the bond at no port; the effect is proven on the testbed
    # (tests/integration/test_units.py, bench/units.py's media gap)
    to_vp2 = Bond.redirects("vp2")
    assert to_vp2[:3] == [f"filter del dev {d} parent ffff:" for d in ("bond0p", "vp1", "vp2")]
    assert [c.split()[3] + ">" + c.split()[-1] for c in to_vp2[3:]] == ["bond0p>vp2", "vp2>bond0p"]
    assert Bond.redirects("down") == to_vp2[:3]


def test_bond_down_when_both_ports_lose_link_and_up_again():
    b = BondLogic()
    b.update({"vp1": True, "vp2": True})
    assert b.update({"vp1": False, "vp2": False}) == "down"
    assert not b.up and b.status()["active_port"] is None
    assert b.update({"vp1": False, "vp2": True}) == "vp2"
    assert b.failovers == 0      # coming back up is not a failover


def test_garp_frame_is_a_broadcast_arp_request_for_its_own_address():
    f = garp_frame("02:aa:bb:cc:dd:ee", "10.1.2.3")
    assert len(f) == 60 and f[:6] == b"\xff" * 6 and f[12:14] == b"\x08\x06"
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", f[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)
    assert f[28:32] == f[38:42] == socket.inet_aton("10.1.2.3")
    assert f[22:28] == bytes.fromhex("02aabbccddee")


def test_unit_mac_is_stable_and_locally_administered():
    assert unit_mac("tmedia-1") == unit_mac("tmedia-1") != unit_mac("tmedia-2")
    assert unit_mac("tmedia-1").startswith("02:") and len(unit_mac("tmedia-1")) == 17


def test_watchdog_is_armed_by_the_first_poll_and_expires_after_its_timeout():
    c = Clock()
    w = Watchdog(5.0, c)
    c.t += 100
    assert not w.expired()          # never polled: never reboots (hosts not up yet)
    w.kick()
    c.t += 4.9
    assert not w.expired()
    w.kick()                        # polling resumed in time: nothing happens
    c.t += 5.0
    assert not w.expired()
    c.t += 0.01
    assert w.expired()


def test_watchdog_outlasts_a_host_switchover_gap():
    # the gap between the old controller's last poll and the new one's first is at most
    # about lease (1.5 s) + poll interval (0.2 s); the default watchdog is 5 s
    c = Clock()
    w = Watchdog(5.0, c)
    w.kick()
    c.t += 1.5 + 0.2
    assert not w.expired()


def test_app_crash_deadlock_and_slow_start():
    c = Clock()
    a = AppWatch(deadlock=1.5, startup=20.0, clock=c)
    assert a.verdict(None) is None                 # not started
    a.started()
    c.t += 19
    assert a.verdict(None) is None
    c.t += 2
    assert "did not start" in a.verdict(None)
    a.started()
    a.heartbeat()
    c.t += 1.4
    assert a.verdict(None) is None
    c.t += 0.2
    assert "deadlocked" in a.verdict(None)
    a.heartbeat()
    assert "crashed (exit status -9)" in a.verdict(-9)
    a.stopped()
    assert a.verdict(-9) is None


def test_bad_content_length_is_marked_for_a_400():
    from emulator.tmedia.sip_stack import MARK, mark_bad_content_length
    ok = "INVITE sip:a@b SIP/2.0\r\nVia: x\r\nContent-Length: 3\r\n\r\nabc"
    assert mark_bad_content_length(ok) == ok
    for head in ("Content-Length: -4", "Content-Length: x", "l: 3\r\nContent-Length: 3"):
        out = mark_bad_content_length(f"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n{head}\r\n\r\nabc")
        lines = out.split("\r\n\r\n")[0].split("\r\n")
        assert any(line.startswith(MARK) for line in lines)
        assert not any(line.lower().startswith(("content-length", "l:")) for line in lines)


def test_a_voice_path_is_up_while_every_target_answers():
    from emulator.tmedia.voice_paths import DOWN_AFTER_S, PathState
    c = Clock()
    p = PathState("101", ["10.0.101.31", "10.0.101.32"], c)
    assert p.up()                           # at start: given DOWN_AFTER_S to be heard
    c.t += DOWN_AFTER_S + 0.1
    assert not p.up()                       # nobody answered
    p.answered("10.0.101.31")
    p.answered("10.0.101.32")
    assert p.up()
    c.t += DOWN_AFTER_S - 0.1
    p.answered("10.0.101.31")               # one peer goes silent: the path is down
    c.t += 0.2
    assert not p.up()
    p.answered("10.0.101.32")
    assert p.up()


def test_a_peer_s_address_on_a_virtual_port():
    from emulator.tmedia.ports import peer_on
    assert peer_on("172.21.101.21/24", "172.21.3.32") == "172.21.101.32"
