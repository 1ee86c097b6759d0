"""The gateway without sockets or Docker (emulator/host/gateway.py, routing.py,
call_records.py): accounts and limits, routes of the loaded version, call records kept
the same on both hosts whatever the order of the changes, closing calls, reconciliation
with the units, and the copy a restarted gateway takes from its peer."""
from __future__ import annotations

import random

import pytest

from emulator.host.call_records import CallRecords
from emulator.host.gateway import Gateway
from emulator.host.routing import Routing
from oam_fakes import FakeStore, settings

A, B = settings(), settings(host="host-b", peer="host-a", ctrl_ips=("10.0.1.12", "10.0.2.12"),
                            peer_ctrl_ips=("10.0.1.11", "10.0.2.11"))
UNIT_ADDR = ("10.0.1.21", 7100)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Pair:
    """Two gateways whose replication datagrams are delivered in-process (or dropped)."""

    def __init__(self, store=None):
        self.store = store or FakeStore()
        self.clock = Clock()
        self.roles = {"host-a": "active", "host-b": "standby"}
        self.unit_requests = []
        self.unit_reply = lambda addrs, msg: None
        self.drop = False
        self.a = self.make(A)
        self.b = self.make(B)

    def make(self, s):
        gw = Gateway(s, self.store, role_fn=lambda: self.roles[s.host], clock=self.clock,
                     send_fn=lambda addrs, msg: self.deliver(s, addrs, msg),
                     request_fn=self.request)
        gw.load()
        return gw

    def deliver(self, sender, addrs, msg):
        assert sorted(a[0] for a in addrs) == sorted(sender.peer_ctrl_ips)   # both networks
        if not self.drop:
            peer = self.b if sender.host == "host-a" else self.a
            peer.handle(msg, (sender.ctrl_ips[0], 7100))

    def request(self, addrs, msg, timeout):
        self.unit_requests.append((addrs, msg))
        if addrs and addrs[0][1] == 7100:       # gateway to gateway (dump)
            peer = self.b if addrs[0][0] in B.ctrl_ips else self.a
            return dict(peer.handle(dict(msg, seq=1), ("10.0.1.99", 40000)), seq=1)
        return self.unit_reply(addrs, msg)


def route(gw, call_id, cli="sipp", cld="1000"):
    return gw.handle({"op": "route", "seq": 1, "call_id": call_id, "cli": cli, "cld": cld,
                      "unit": "tmedia-1"}, UNIT_ADDR)


def event(gw, ev, call_id):
    return gw.handle({"op": "call", "event": ev, "call_id": call_id, "unit": "tmedia-1",
                      "gateway": "host-a"}, UNIT_ADDR)


# ---- routing decision -----------------------------------------------------------------

SNAP = {"config": "default",
        "routes": [{"id": 1, "prefix": "", "priority": 0, "host": "10.0.3.32", "port": 5060},
                   {"id": 2, "prefix": "9", "priority": 5, "host": "10.0.3.33", "port": 5070},
                   {"id": 3, "prefix": "9", "priority": 1, "host": "10.0.3.32", "port": 5070},
                   {"id": 4, "prefix": "95", "priority": 0, "host": "10.0.3.32", "port": 5071}],
        "accounts": {"off": {"enabled": False, "max_calls": 10}, "two": {"enabled": True, "max_calls": 2},
                     "none": {"enabled": True, "max_calls": 0}}}


def test_longest_prefix_wins_and_its_rows_are_alternates_in_priority_order():
    r = Routing(SNAP)
    assert r.destinations("9100")[0] == [{"host": "10.0.3.32", "port": 5070}, {"host": "10.0.3.33", "port": 5070}]
    assert r.destinations("9500")[0] == [{"host": "10.0.3.32", "port": 5071}]
    assert r.destinations("1000")[0] == [{"host": "10.0.3.32", "port": 5060}]


def test_no_route_is_404():
    d = Routing(dict(SNAP, routes=[SNAP["routes"][3]])).decide("sipp", "1000", 0)
    assert (d.ok, d.code) == (False, 404) and "'1000'" in d.error


@pytest.mark.parametrize("cli,in_use,code", [("off", 0, 403), ("two", 2, 486), ("two", 1, 0),
                                             ("none", 0, 486), ("stranger", 999, 0), (None, 0, 0)])
def test_accounts_disabled_403_at_limit_486_unknown_callers_unlimited(cli, in_use, code):
    d = Routing(SNAP).decide(cli, "1000", in_use)
    assert d.code == code and d.ok == (code == 0)


# ---- the gateway: routes, accounts, records -----------------------------------------

def test_only_the_active_gateway_routes():
    p = Pair()
    assert route(p.b, "c1") == {"ok": False, "code": 503, "standby": True,
                                "error": "host-b gateway is standby"}
    r = route(p.a, "c1")
    assert r["ok"] and r["gateway"] == "host-a" and r["routes"] == [{"host": "10.0.3.32", "port": 5060}]


def test_account_limit_counts_calls_in_progress_and_retransmissions_are_not_counted():
    p = Pair()
    p.store.account_rows["sipp"]["max_calls"] = 2
    p.store.save_version(p.store.snapshot(), "host-a")
    p.a.load()
    assert route(p.a, "c1")["ok"] and route(p.a, "c1")["ok"]      # retransmitted request
    assert route(p.a, "c2")["ok"]
    r = route(p.a, "c3")
    assert r["code"] == 486 and "limit of 2" in r["error"]
    event(p.a, "ended", "c1")
    assert route(p.a, "c3")["ok"]
    assert route(p.a, "c4", cli="other")["ok"]                     # no account: not limited


def test_changes_take_effect_when_a_new_version_is_loaded_not_before():
    p = Pair()
    p.store.save_version(p.store.snapshot(), "host-a")
    p.a.load()
    p.store.account_rows["sipp"]["enabled"] = False                # changed, not reloaded
    p.a.load()
    assert route(p.a, "c1")["ok"]
    p.store.save_version(p.store.snapshot(), "host-a")             # the engine's reload
    assert p.a.load() == 2
    assert route(p.a, "c2")["code"] == 403


def test_a_gateway_that_never_loaded_a_configuration_refuses_503_not_404():
    p = Pair()

    def down():
        raise OSError("db down")
    p.store.latest_version_id = down
    p.a = p.make(A)
    r = route(p.a, "c1")
    assert r["code"] == 503 and "no configuration" in r["error"]


def test_a_database_error_keeps_the_last_good_table():
    p = Pair()

    def down():
        raise OSError("db down")
    p.store.latest_version_id = down
    assert p.a.load() == 0 and "db down" in p.a.db_error
    assert route(p.a, "c1")["ok"]


def test_records_are_replicated_so_the_standby_lists_the_calls():
    p = Pair()
    for i in range(3):
        route(p.a, f"c{i}")
        event(p.a, "answered", f"c{i}")
    event(p.a, "ended", "c1")
    listed = p.b.handle({"op": "calls", "seq": 1}, ("127.0.0.1", 5))
    assert [c["call_id"] for c in listed["calls"]] == ["c0", "c2"]
    assert all(c["state"] == "answered" and c["cli"] == "sipp" and c["unit"] == "tmedia-1"
               for c in listed["calls"])


def test_an_event_sent_to_the_old_active_gateway_reaches_the_new_one():
    p = Pair()
    route(p.a, "c1")
    event(p.a, "answered", "c1")
    p.roles = {"host-a": "standby", "host-b": "active"}            # switchover
    event(p.a, "ended", "c1")         # the unit tells the gateway that routed the call
    assert p.b.records.get("c1") is None and p.b.records.is_known("c1")


def test_repl_is_accepted_from_the_peer_only():
    p = Pair()
    r = p.b.handle({"op": "repl", "changes": [{"call_id": "x", "state": "answered"}]}, ("10.9.9.9", 1))
    assert r["ok"] is False and p.b.records.get("x") is None


def test_records_converge_whatever_the_order_and_duplication_of_changes():
    changes = []
    for i in range(20):
        cid = f"c{i}"
        changes.append({"call_id": cid, "state": "routing", "cli": "sipp", "unit": "tmedia-1", "routed_at": i})
        changes.append({"call_id": cid, "state": "answered", "answered_at": i + 0.5})
        if i % 3 == 0:
            changes.append({"call_id": cid, "state": "ended", "ended_at": i + 1})
    want = CallRecords()
    for c in changes:
        want.merge(c)
    rng = random.Random(7)
    for _ in range(50):
        got = CallRecords()
        for c in rng.sample(changes * 2, len(changes) * 2):
            got.merge(c)
        assert got.live() == want.live()
    assert len(want.live()) == 13 and want.in_use("sipp") == 13


def test_a_restarted_gateway_copies_the_records_from_its_peer():
    p = Pair()
    for i in range(100):                                        # several dump pages
        route(p.a, f"c{i:03d}")
        event(p.a, "answered", f"c{i:03d}")
    p.b = p.make(B)                                             # host-b's gateway restarted
    assert p.b.records.live() == []
    assert p.b.copy_from_peer() == 100
    assert len(p.b.records.live()) == 100


# ---- closing calls and reconciliation ----------------------------------------------

def test_close_asks_the_calls_unit_on_both_control_networks_and_ends_the_record():
    p = Pair()
    route(p.a, "c1")
    event(p.a, "answered", "c1")
    p.unit_reply = lambda addrs, msg: {"ok": True, "unit": "tmedia-1", "call_id": msg["call_id"]}
    assert p.a.close("c1") == {"ok": True, "call_id": "c1", "unit": "tmedia-1"}
    addrs, msg = p.unit_requests[-1]
    assert addrs == [("10.0.1.21", 7000), ("10.0.2.21", 7000)]
    assert msg == {"op": "close", "controller": "host-a", "call_id": "c1"}
    assert p.a.records.get("c1") is None and p.b.records.get("c1") is None   # replicated


@pytest.mark.parametrize("reply,code", [(None, 504), ({"ok": False, "error": "not controller"}, 502),
                                        ({"ok": False, "code": 404, "error": "no call"}, 404)])
def test_close_failures(reply, code):
    p = Pair()
    route(p.a, "c1")
    p.unit_reply = lambda addrs, msg: reply
    assert p.a.close("c1")["code"] == code
    assert (p.a.records.get("c1") is None) == (code == 404)    # a call the unit lost is removed


def test_close_of_an_unknown_call_is_404_and_on_the_standby_409():
    p = Pair()
    assert p.a.close("nope")["code"] == 404
    route(p.a, "c1")
    assert p.b.close("c1")["code"] == 409


def test_close_is_accepted_from_the_local_oam_only():
    p = Pair()
    assert p.a.handle({"op": "close", "call_id": "c1"}, ("10.0.1.12", 5))["code"] == 403


def test_reconcile_learns_answered_calls_and_ends_records_the_unit_lost():
    p = Pair()
    p.drop = True                                       # replication to host-b lost
    route(p.a, "old")
    event(p.a, "answered", "old")
    p.roles = {"host-a": "standby", "host-b": "active"}
    p.drop = False
    route(p.b, "gone")
    p.clock.t += 10
    p.unit_reply = lambda addrs, msg: {
        "ok": True, "total": 2, "calls": [
            {"call_id": "old", "cli": "sipp", "cld": "1000", "answered": True, "gateway": "host-a"},
            {"call_id": "setup", "cli": "sipp", "cld": "1000", "answered": False, "gateway": None}]}
    assert p.b.reconcile() == 2
    assert p.b.records.get("old")["state"] == "answered"
    assert p.b.records.get("gone") is None
    assert p.b.records.get("setup") is None            # still in setup: may be refused yet
    assert p.a.records.get("old") is not None          # the change went to the peer too


def test_reconcile_leaves_young_records_and_silent_units_alone():
    p = Pair()
    route(p.a, "young")
    p.unit_reply = lambda addrs, msg: {"ok": True, "total": 0, "calls": []}
    assert p.a.reconcile() == 0
    p.clock.t += 10
    p.unit_reply = lambda addrs, msg: None
    assert p.a.reconcile() == 0 and p.a.records.get("young") is not None


def test_purge_forgets_old_tombstones_and_stuck_setups():
    clock = Clock()
    recs = CallRecords(clock)
    recs.merge({"call_id": "a", "state": "ended"})
    recs.merge({"call_id": "b", "state": "routing"})
    recs.merge({"call_id": "c", "state": "answered"})
    clock.t += 200
    assert recs.purge() == 2 and recs.counts()["answered"] == 1


def test_unknown_ops_and_bad_requests_get_an_error_not_a_crash():
    p = Pair()
    assert p.a.handle({"op": "frobnicate"}, UNIT_ADDR)["ok"] is False
    assert "bad route request" in p.a.handle({"op": "route"}, UNIT_ADDR)["error"]
    assert p.a.handle({"op": "repl", "changes": [{"state": "nope"}]}, (A.peer_ctrl_ips[0], 7100))["ok"] is False


def test_listing_pages_by_cursor_skips_no_call_when_others_end_meanwhile():
    p = Pair()
    for i in range(100):
        route(p.a, f"c{i:03d}")
    seen, after = [], None
    while True:
        page = p.a.handle({"op": "calls", "seq": 1, "after": after}, ("127.0.0.1", 5))
        seen += [c["call_id"] for c in page["calls"]]
        if not page["more"]:
            break
        after = page["calls"][-1]["call_id"]
        event(p.a, "ended", seen[0])                # a listed call ends between two pages
    assert seen == [f"c{i:03d}" for i in range(100)]


def test_calls_in_use_per_caller_match_a_scan_of_the_records_whatever_the_changes():
    """in_use is kept as a count per caller (O(1) per route request): after any mix of
    changes, late fields, duplicates and purges it equals a count over every record."""
    clock = [0.0]
    recs = CallRecords(clock=lambda: clock[0])
    rng = random.Random(11)
    states = ["routing", "answered", "closing", "ended"]
    for step in range(3000):
        cid = f"c{rng.randrange(300)}"
        change = {"call_id": cid, "state": rng.choice(states)}
        if rng.random() < 0.7:
            change["cli"] = rng.choice(["a", "b", "c"])
        recs.merge(change)
        if step % 200 == 0:
            clock[0] += 60
            recs.purge()
        if step % 50 == 0:
            for cli in ("a", "b", "c", None):
                scan = sum(1 for r in recs.live() if r["cli"] == cli)
                assert recs.in_use(cli) == scan
                some = next((r["call_id"] for r in recs.live() if r["cli"] == cli), None)
                if some:
                    assert recs.in_use(cli, exclude=some) == scan - 1


def test_a_reply_that_cannot_be_sent_does_not_take_the_server_down():
    """A network cut makes sendto fail with EPERM (nftables): the answer is lost, the
    server lives (the gateway of a cut host died with a traceback before)."""
    from emulator.host.udp import Server

    class NoSend:
        def sendto(self, *a):
            raise PermissionError(1, "Operation not permitted")

    srv = Server.__new__(Server)
    srv.sock = NoSend()
    srv.reply(("10.0.0.1", 1), {"ok": True})     # no exception
