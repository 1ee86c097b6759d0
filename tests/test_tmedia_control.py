"""The unit's control agent request handling (emulator/tmedia/control.py) with a fake clock:
the wire replies of ARCHITECTURE.md "Unit control", without sockets."""
from __future__ import annotations

import json

import pytest

from emulator.tmedia.control import ControlAgent
from emulator.tmedia.counters import Counters

GW_A = [["172.28.1.11", 7100], ["172.28.2.11", 7100]]
GW_B = [["172.28.1.12", 7100], ["172.28.2.12", 7100]]


class FakeClock:
    def __init__(self):
        self.t = 50.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def logs():
    return []


@pytest.fixture
def agent(clock, logs):
    counters = Counters()
    counters.rtp_stats = lambda: {"packets_transmitted": 7, "packets_received": 8, "active_sessions": 1}
    return ControlAgent("tmedia-1", counters, log=logs.append, clock=clock)


def ask(agent, msg) -> dict:
    data = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
    reply = agent.handle_datagram(data)
    json.dumps(reply)    # always serialisable
    return reply


def poll(controller="host-a", seq=1, epoch=3, lease_ms=1500, gateways=GW_A):
    return {"op": "poll", "seq": seq, "controller": controller, "epoch": epoch, "lease_ms": lease_ms,
            "gateways": gateways}


def test_poll_reply_carries_unit_and_counters(agent, clock, logs):
    clock.t += 12.5
    r = ask(agent, poll())
    assert r["seq"] == 1 and r["ok"] is True
    assert (r["unit"], r["controller"], r["epoch"]) == ("tmedia-1", "host-a", 3)
    for k in ("calls_active", "calls_total", "calls_failed"):
        assert r[k] == 0
    assert r["rtp_packets"] == 7 and r["uptime_s"] == 12.5
    assert agent.current_lease() == ("host-a", (("172.28.1.11", 7100), ("172.28.2.11", 7100)))
    assert any("lease acquired by host-a" in line for line in logs)


def test_poll_from_another_controller_is_refused_as_the_contract_says(agent, clock):
    ask(agent, poll())
    clock.t += 0.7
    r = ask(agent, poll("host-b", seq=9, epoch=4, gateways=GW_B))
    assert r == {"seq": 9, "ok": False, "error": "leased", "controller": "host-a", "expires_in_ms": 800}


def test_takeover_after_expiry_is_logged(agent, clock, logs):
    ask(agent, poll())
    clock.t += 1.5
    agent.check_expiry()
    assert any("lease expired: host-a" in line for line in logs)
    assert agent.current_lease() is None           # no routes are asked for now
    r = ask(agent, poll("host-b", seq=2, epoch=4, gateways=GW_B))
    assert r["ok"] is True and r["controller"] == "host-b" and r["epoch"] == 4
    assert any("lease taken over by host-b" in line and "(was host-a)" in line for line in logs)


def test_status_leaves_the_lease_alone(agent, clock):
    r = ask(agent, {"op": "status", "seq": 3})
    assert r["ok"] is True and r["seq"] == 3 and r["controller"] is None and r["unit"] == "tmedia-1"
    ask(agent, poll())
    clock.t += 1.0
    r = ask(agent, {"op": "status", "seq": 4})
    assert r["controller"] == "host-a" and r["lease_expires_in_ms"] == 500
    clock.t += 0.5
    assert ask(agent, {"op": "status", "seq": 5})["controller"] is None   # status did not renew


def test_release(agent, logs):
    ask(agent, poll())
    assert ask(agent, {"op": "release", "seq": 2, "controller": "host-b"}) == \
        {"seq": 2, "ok": False, "error": "not controller", "controller": "host-a"}
    assert ask(agent, {"op": "release", "seq": 3, "controller": "host-a"}) == {"seq": 3, "ok": True}
    assert agent.current_lease() is None
    assert any("lease released by host-a" in line for line in logs)
    assert ask(agent, poll("host-b", seq=4, gateways=GW_B))["ok"] is True


@pytest.mark.parametrize("data, needle", [
    (b"{nope", "bad JSON"),
    (b"\xff\xfe", "bad JSON"),
    (b"[1, 2]", "JSON object"),
    (b'"poll"', "JSON object"),
    (b"{}", "missing 'op'"),
])
def test_malformed_datagrams_get_an_error_without_seq(agent, data, needle):
    r = ask(agent, data)
    assert r["ok"] is False and needle in r["error"] and "seq" not in r


@pytest.mark.parametrize("msg, needle", [
    ({"op": "reboot", "seq": 1}, "unknown op"),
    ({"op": 7, "seq": 1}, "unknown op"),
    (dict(poll(), controller=""), "controller"),
    (dict(poll(), controller=None), "controller"),
    (dict(poll(), lease_ms=0), "lease_ms"),
    (dict(poll(), lease_ms=-5), "lease_ms"),
    (dict(poll(), lease_ms="1500"), "lease_ms"),
    (dict(poll(), lease_ms=True), "lease_ms"),
    (dict(poll(), gateways="172.28.1.11:7100"), "gateways"),
    (dict(poll(), gateways=[["172.28.1.11"]]), "gateway"),
    (dict(poll(), gateways=[["172.28.1.11", 70000]]), "gateway"),
    (dict(poll(), gateways=[[1, 7100]]), "gateway"),
    ({"op": "release", "seq": 1}, "controller"),
])
def test_bad_requests_get_an_error_with_their_seq(agent, msg, needle):
    r = ask(agent, msg)
    assert r["ok"] is False and needle in r["error"] and r["seq"] == 1
    assert agent.current_lease() is None


def test_a_failing_counter_source_is_an_error_reply_not_a_crash(agent, logs):
    def broken():
        raise RuntimeError("relay gone")
    agent.counters.rtp_stats = broken
    r = ask(agent, {"op": "status", "seq": 1})
    assert r["ok"] is False and "internal error" in r["error"] and r["seq"] == 1


class FakeBoard:
    def __init__(self):
        self.assumed, self.polls = [], 0

    def polled(self):
        self.polls += 1

    def assume(self, unit, address, vlans, by):
        self.assumed.append((unit, address, vlans, by))

    def fields(self):
        return {"board": "tmedia-3", "serves": None}


def test_assume_goes_to_the_board_only_from_the_lease_holder(clock, logs):
    board = FakeBoard()
    agent = ControlAgent("tmedia-3", Counters(), log=logs.append, clock=clock, board=board)
    msg = {"op": "assume", "seq": 2, "controller": "host-a", "unit": "tmedia-1", "address": "10.0.3.21/24"}
    assert ask(agent, msg)["error"] == "not controller"
    assert ask(agent, poll())["board"] == "tmedia-3" and board.polls == 1   # watchdog kick
    r = ask(agent, msg)
    assert r["ok"] is True and r["seq"] == 2 and r["board"] == "tmedia-3"
    assert board.assumed == [("tmedia-1", "10.0.3.21/24", [], "host-a")]
    r = ask(agent, dict(msg, vlans=[[101, "10.0.101.21/24"], [102, "10.0.102.21/24"]]))
    assert r["ok"] is True
    assert board.assumed[-1][2] == [(101, "10.0.101.21/24"), (102, "10.0.102.21/24")]
    assert ask(agent, dict(msg, unit=None, address=None))["ok"] is True   # become the spare
    assert board.assumed[-1] == (None, None, [], "host-a")


@pytest.mark.parametrize("extra,needle", [
    ({"address": "10.0.3.21"}, "ip/prefix"),
    ({"address": "10.0.3/24"}, "not an IPv4"),
    ({"address": "10.0.3.21/40"}, "not an IPv4"),
    ({"unit": 5}, "'unit' must be a string"),
    ({"address": None}, "ip/prefix"),
    ({"vlans": "101"}, "'vlans' must be a list"),
    ({"vlans": [[0, "10.0.101.21/24"]]}, "bad virtual port"),
    ({"vlans": [[101, "10.0.101.21"]]}, "not an IPv4"),
    ({"vlans": [[101, "10.0.101.21/24"], [101, "10.0.102.21/24"]]}, "appears twice"),
    ({"unit": None, "vlans": [[101, "10.0.101.21/24"]]}, "none for the spare"),
])
def test_bad_assume_requests_are_refused_with_a_message(clock, logs, extra, needle):
    board = FakeBoard()
    agent = ControlAgent("tmedia-3", Counters(), log=logs.append, clock=clock, board=board)
    ask(agent, poll())
    msg = dict({"op": "assume", "seq": 9, "controller": "host-a", "unit": "tmedia-1",
                "address": "10.0.3.21/24"}, **extra)
    r = ask(agent, msg)
    assert r["ok"] is False and needle in r["error"] and r["seq"] == 9
    assert board.assumed == []


def test_assume_without_a_board_is_refused(agent):
    ask(agent, poll())
    r = ask(agent, {"op": "assume", "controller": "host-a", "unit": None})
    assert r["ok"] is False and "no board" in r["error"]


def test_polls_are_answered_while_a_calls_request_waits_for_a_busy_reactor():
    """`calls` waits for the SIP applications' reactors; on the agent's one thread a
    poll queued behind it was answered after the lease had lapsed (a healthy unit lost
    its lease, and its host the majority). It has a thread of its own now."""
    import socket
    import threading
    import time as _time

    release = threading.Event()

    class BusyStack:
        def list_calls(self, timeout):
            release.wait(2)          # a reactor that takes its time
            return []

    agent = ControlAgent("tmedia-1", Counters(), port=0, host="127.0.0.1", log=lambda m: None)
    agent.stack = BusyStack()
    agent.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            addr = ("127.0.0.1", agent.port)
            s.sendto(json.dumps({"op": "calls", "seq": 1}).encode(), addr)
            t0 = _time.monotonic()
            s.sendto(json.dumps(poll(seq=2)).encode(), addr)
            first = json.loads(s.recv(65000))
            assert first["seq"] == 2 and first["ok"] and _time.monotonic() - t0 < 0.2
            release.set()
            assert json.loads(s.recv(65000))["seq"] == 1
    finally:
        release.set()
        agent.stop()
