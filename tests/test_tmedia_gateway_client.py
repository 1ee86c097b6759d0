"""The unit's route requests (emulator/tmedia/gateway_client.py) against fake gateways on
127.0.0.1: every lease address is asked, the first ok wins, refusals keep their code,
silence is a 503 at the deadline after retransmissions."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from harness.util import wait_for

from emulator.tmedia.gateway_client import GatewayClient, parse_routes


class Gw:
    """A UDP gateway that answers with reply(msg) (None: stay silent) and counts what it got."""

    def __init__(self, reply=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.addr = self.sock.getsockname()
        self.reply = reply
        self.got = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                data, addr = self.sock.recvfrom(65000)
            except OSError:
                return
            msg = json.loads(data)
            self.got.append(msg)
            out = self.reply(msg) if self.reply else None
            if out is not None:
                self.sock.sendto(json.dumps(dict(out, seq=msg["seq"])).encode(), addr)

    def close(self):
        self.sock.close()


def ok(name="host-a", routes=({"host": "172.28.3.32", "port": 5060},)):
    return lambda msg: {"ok": True, "gateway": name, "routes": list(routes)}


def refuse(code, text):
    return lambda msg: {"ok": False, "code": code, "error": text}


@pytest.fixture
def client():
    c = GatewayClient("tmedia-1", timeout=0.4, retransmit=0.1).start()
    yield c
    c.stop()


def ask(client, addrs, cld="1000"):
    done = threading.Event()
    box = {}

    def on_done(res):
        box["res"] = res
        box["t"] = time.monotonic()
        done.set()

    t0 = time.monotonic()
    client.route(addrs, "call-1@x", "sipp", cld, on_done)
    assert done.wait(5), "route callback never ran"
    return box["res"], box["t"] - t0


def test_the_request_carries_the_contract_fields(client):
    gw = Gw(ok())
    try:
        res, _ = ask(client, [gw.addr])
        msg = gw.got[0]
        assert {k: msg[k] for k in ("op", "call_id", "cli", "cld", "unit")} == \
            {"op": "route", "call_id": "call-1@x", "cli": "sipp", "cld": "1000", "unit": "tmedia-1"}
        assert isinstance(msg["seq"], int)
        assert res.ok and res.gateway == "host-a" and res.routes == [("172.28.3.32", 5060)]
        assert res.gateway_addr == gw.addr
    finally:
        gw.close()


def test_one_dead_path_does_not_stop_the_answer():
    # a 2 s deadline: waiting for the silent address would take all of it, so an answer
    # within half of it shows the first ok wins, with room for a loaded machine
    client = GatewayClient("tmedia-1", timeout=2.0, retransmit=0.1).start()
    silent, live = Gw(None), Gw(ok())
    try:
        res, took = ask(client, [silent.addr, live.addr])
        assert res.ok and res.gateway_addr == live.addr
        assert took < 1.0            # first ok wins: no wait for the silent address
        # it was asked too (its reader thread may see the datagram after the answer came:
        # failed once in CI with both cores busy)
        wait_for(lambda: len(silent.got) >= 1, 1.0, "the silent address asked", interval=0.01)
    finally:
        client.stop()
        silent.close()
        live.close()


def test_ok_from_one_address_beats_a_refusal_from_another(client):
    standby, active = Gw(refuse(503, "standby")), Gw(ok("host-b"))
    try:
        res, _ = ask(client, [standby.addr, active.addr])
        assert res.ok and res.gateway == "host-b"
    finally:
        standby.close()
        active.close()


def test_refusal_code_when_every_address_refuses(client):
    a, b = Gw(refuse(404, "no route")), Gw(refuse(404, "no route"))
    try:
        res, took = ask(client, [a.addr, b.addr])
        assert not res.ok and res.code == 404 and "no route" in res.reason
        assert took < 0.3            # all answered: no wait for the deadline
    finally:
        a.close()
        b.close()


def test_silence_is_503_at_the_deadline_after_retransmissions(client):
    gw = Gw(None)
    try:
        res, took = ask(client, [gw.addr])
        assert not res.ok and res.code == 503 and "no answer" in res.reason
        assert 0.35 <= took < 1.0
        # sent at 0, 0.1, 0.2, 0.3 s: same seq each time
        assert len(gw.got) >= 3 and len({m["seq"] for m in gw.got}) == 1
    finally:
        gw.close()


def test_a_refusal_from_one_path_and_silence_on_the_other_keeps_the_code(client):
    gw, silent = Gw(refuse(404, "no route")), Gw(None)
    try:
        res, took = ask(client, [gw.addr, silent.addr])
        assert not res.ok and res.code == 404
        assert took >= 0.35          # waited for a possible ok until the deadline
    finally:
        gw.close()
        silent.close()


def test_no_lease_is_503_at_once(client):
    res, took = ask(client, [])
    assert not res.ok and res.code == 503 and res.reason == "no lease"


def test_an_ok_without_usable_routes_is_a_500(client):
    gw = Gw(ok(routes=[{"host": "sipp-uas.example", "port": 5060}, {"host": "192.0.2.10", "port": "x"}]))
    try:
        res, _ = ask(client, [gw.addr])
        assert not res.ok and res.code == 500
    finally:
        gw.close()


def test_a_cancelled_request_never_calls_back(client):
    gw = Gw(None)
    called = threading.Event()
    try:
        handle = client.route([gw.addr], "c", "a", "b", lambda res: called.set())
        handle.cancel()
        # the deadline (0.4 s) passes with no callback; then the client still works
        assert not called.wait(0.8)
        gw.reply = ok()
        res, _ = ask(client, [gw.addr])
        assert res.ok
    finally:
        gw.close()


def test_call_events_are_fire_and_forget(client):
    gw = Gw(None)
    try:
        client.call_event("answered", "call-1@x", "host-a", gw.addr)
        deadline = time.monotonic() + 2
        while not gw.got and time.monotonic() < deadline:
            time.sleep(0.01)
        msg = gw.got[0]
        assert {k: msg[k] for k in ("op", "event", "call_id", "unit", "gateway")} == \
            {"op": "call", "event": "answered", "call_id": "call-1@x", "unit": "tmedia-1", "gateway": "host-a"}
    finally:
        gw.close()


def test_parse_routes_keeps_order_and_drops_junk():
    assert parse_routes([{"host": "172.28.3.32", "port": 5060}, {"host": "x"}, "junk",
                         {"host": "172.28.3.33"}, {"host": "172.28.3.34", "port": 0}]) == \
        [("172.28.3.32", 5060), ("172.28.3.33", 5060)]
    assert parse_routes(None) == []


def lease_moves(client, old: Gw, new: Gw, call_id: str, before_move=None):
    """A request sent to `old` (the lease's gateway), then the lease moved to `new`:
    the route result. `before_move()` runs once `old` got the request."""
    lease = [[old.addr]]
    done, box = threading.Event(), {}
    try:
        client.route([old.addr], call_id, "sipp", "1000",
                     lambda r: (box.setdefault("r", r), done.set()), gateways_fn=lambda: lease[0])
        wait = time.monotonic() + 1
        while not old.got and time.monotonic() < wait:
            time.sleep(0.01)
        assert old.got, "the first request went to the old host"
        if before_move is not None:
            before_move(done)
        lease[0] = [new.addr]                 # the lease moved
        assert done.wait(1.0)
        return box["r"]
    finally:
        old.close()
        new.close()


def test_a_request_follows_the_lease_to_the_new_active_host_within_its_deadline(client):
    """Sent to the old active host (dead, silent) just before the unit's lease moved: the
    next retransmission goes to the new lease's gateway, whose answer wins in time
    (before, the request waited for the dead host and the caller got 503)."""
    new = Gw(ok("host-b"))
    r = lease_moves(client, Gw(None), new, "c-moved")
    assert r.ok and r.gateway == "host-b"
    assert [m["call_id"] for m in new.got] == ["c-moved"]


def test_a_request_made_without_a_lease_waits_for_one_until_its_deadline(client):
    """Between the old holder's lease lapsing and the new host's first poll the unit has
    no lease: a call then waits for one (up to the deadline) instead of a 503 at once."""
    gw = Gw(ok("host-b"))
    lease = [()]
    done, box = threading.Event(), {}
    try:
        client.route([], "c-nolease", "sipp", "1000",
                     lambda r: (box.setdefault("r", r), done.set()), gateways_fn=lambda: lease[0])
        assert not done.wait(0.15), "answered before any lease existed"
        lease[0] = [gw.addr]
        assert done.wait(1.0) and box["r"].ok and box["r"].gateway == "host-b"
        late = threading.Event()
        client.route([], "c-never", "sipp", "1000", lambda r: (box.update(late=r), late.set()),
                     gateways_fn=lambda: ())
        assert late.wait(2.0) and box["late"].code == 503 and "no lease" in box["late"].reason
    finally:
        gw.close()


def test_a_standby_refusal_waits_for_the_lease_to_move_to_the_active_host(client):
    """A host quitting gracefully steps down before the unit's lease moves: its gateway
    answers 503 standby. That is no final answer: the request is asked again of the
    current lease until its deadline, and the new active host's ok wins (before, the
    caller got the standby's 503 at once: CI quit-master-service)."""
    old = Gw(lambda m: {"ok": False, "code": 503, "standby": True, "error": "host-b gateway is standby"})

    def still_open(done):
        assert not done.wait(0.15), "the standby's refusal ended the request"
    r = lease_moves(client, old, Gw(ok("host-a")), "c-stepdown", before_move=still_open)
    assert r.ok and r.gateway == "host-a"


def test_a_standby_refusal_stands_when_the_lease_never_moves(client):
    gw = Gw(lambda m: {"ok": False, "code": 503, "standby": True, "error": "host-b gateway is standby"})
    try:
        res, took = ask(client, [gw.addr])
        assert not res.ok and res.code == 503 and "standby" in res.reason
        assert took >= 0.35          # kept asking until the deadline
        assert len(gw.got) >= 3
    finally:
        gw.close()
