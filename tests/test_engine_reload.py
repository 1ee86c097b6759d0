"""The engine's reload and unit sync (emulator/host/toolpack_engine.py) against the real
unit control agent (emulator/tmedia/control.py) in-process: what `configure` carries, what
the unit then reports and refuses, and who may configure it. No sockets, no Docker."""
from __future__ import annotations

import pytest

from emulator.host.toolpack_engine import Engine
from emulator.tmedia.control import ControlAgent
from emulator.tmedia.counters import Counters
from oam_fakes import FakeStore, settings

GW = [["10.0.1.11", 7100], ["10.0.2.11", 7100]]


class Clock:
    def __init__(self):
        self.t = 10.0

    def __call__(self):
        return self.t


class World:
    """One unit (a real ControlAgent leased by `holder`), a store, the local gateway."""

    def __init__(self, holder="host-a"):
        self.clock = Clock()
        self.unit = ControlAgent("tmedia-1", Counters(), log=lambda m: None, clock=self.clock)
        self.unit.handle({"op": "poll", "controller": holder, "epoch": 1, "lease_ms": 1500,
                          "gateways": GW})
        self.unit_up = True
        self.store = FakeStore()
        self.role = "active"
        self.gateway_version = lambda: self.store.latest_version_id()
        self.sent = []
        self.engine = Engine(settings(), self.store, role_fn=lambda: self.role,
                             request_fn=self.request, send_fn=lambda a, m: self.sent.append((a, m)))

    def request(self, addrs, msg, timeout):
        if addrs[0] == ("127.0.0.1", 7100):
            return {"ok": True, "version": self.gateway_version()}
        assert addrs == [("10.0.1.21", 7000), ("10.0.2.21", 7000)]      # both control networks
        return self.unit.handle(dict(msg)) if self.unit_up else None


def status(w):
    return w.unit.handle({"op": "status"})


def test_the_first_active_engine_loads_version_1_and_configures_the_unit():
    w = World()
    assert status(w)["config"] is None and status(w)["sip_accepting"] is True   # before any push
    w.engine.step()
    st = status(w)
    assert st["config"] == {"name": "default", "version": 1, "routes": 1, "unit": "tmedia-1"}
    assert {(s["kind"], s["name"], s["enabled"]) for s in st["stacks"]} == \
        {("SIP", "sip-0", True), ("SS7", "ss7-0", True), ("ISDN", "isdn-0", True)}
    assert [t["name"] for t in st["trunks"]] == ["e1-0", "e1-1"]
    assert w.sent and all(m["op"] == "load" for _, m in w.sent)          # the standby gateway told


def test_a_standby_engine_applies_nothing_and_follows_the_loaded_version():
    w = World()
    w.role = "standby"
    w.store.request_reload("host-b")
    w.engine.step()
    assert status(w)["config"] is None and w.store.pending_reload() == 1
    w.store.save_version(w.store.snapshot(), "host-b")
    w.engine.next_sync = 0
    w.engine.step()
    assert w.engine.version == 1 and status(w)["config"] is None    # followed, not pushed


def test_reload_applies_every_pending_request_with_the_per_unit_result():
    w = World()
    w.engine.step()
    w.store.activate("alt")
    w.store.set_stack("alt", "tmedia-1", "sip-0", False)
    w.store.set_trunk("alt", "tmedia-1", "e1-1", False)
    r1, r2 = w.store.request_reload("host-a"), w.store.request_reload("host-b")
    w.engine.step()
    for rid in (r1, r2):
        row = w.store.reload_request(rid)
        assert row["version"] == 2 and row["done_by"] == "host-a"
        assert row["result"]["ok"] is True and row["result"]["units"] == {"tmedia-1": "ok"}
        assert row["result"]["gateway"] == {"host": "host-a", "version": 2, "error": None}
    st = status(w)
    assert st["config"]["name"] == "alt" and st["config"]["version"] == 2
    assert st["sip_accepting"] is False                        # the only SIP stack is disabled
    assert w.unit.admission() == (503, "Service Unavailable (SIP stack disabled)")
    assert [t["enabled"] for t in st["trunks"]] == [True, False]


def test_a_unit_that_did_not_answer_is_reported_then_configured_by_the_sync():
    w = World()
    w.unit_up = False
    w.store.request_reload("host-a")
    w.engine.step()
    row = w.store.reload_request(1)
    assert row["result"]["ok"] is False and row["result"]["units"] == {"tmedia-1": "no answer"}
    w.unit_up = True
    w.engine.next_sync = 0
    w.engine.step()                                            # status says version None: push
    assert status(w)["config"]["version"] == 1


def test_a_new_active_engine_after_a_switchover_keeps_the_loaded_version():
    w = World()
    w.engine.step()                                            # version 1 by host-a
    w.unit.handle({"op": "release", "controller": "host-a"})
    w.unit.handle({"op": "poll", "controller": "host-b", "epoch": 2, "lease_ms": 1500, "gateways": GW})
    b = Engine(settings(host="host-b", peer="host-a"), w.store, role_fn=lambda: "active",
               request_fn=w.request, send_fn=lambda a, m: None)
    b.step()
    assert b.version == 1 and status(w)["config"]["version"] == 1 and len(w.store.versions) == 1
    w.store.activate("alt")
    w.store.request_reload("host-b")
    b.step()
    assert status(w)["config"] == {"name": "alt", "version": 2, "routes": 1, "unit": "tmedia-1"}


def test_a_unit_refuses_configure_and_close_from_a_host_without_its_lease():
    w = World(holder="host-b")
    w.engine.step()
    assert status(w)["config"] is None
    assert w.engine.units["tmedia-1"]["error"] == "not controller (controller host-b)"
    r = w.unit.handle({"op": "close", "controller": "host-a", "call_id": "x"})
    assert r == {"ok": False, "error": "not controller", "controller": "host-b"}


@pytest.mark.parametrize("msg,why", [
    ({"version": "1", "config": "default"}, "version"),
    ({"version": 1, "config": ""}, "'config'"),
    ({"version": 1, "config": "d", "stacks": [{"kind": "H323", "name": "x", "enabled": True}]}, "kind"),
    ({"version": 1, "config": "d", "stacks": [{"kind": "SIP", "name": "x", "enabled": "no"}]}, "enabled"),
    ({"version": 1, "config": "d", "trunks": "e1-0"}, "list"),
    ({"version": 1, "config": "d", "routes": -1}, "routes"),
    ({"version": 1, "config": "d", "ss7": {"units": [["tmedia-1", "10.0.3.21"]]}}, "ss7.units"),
    ({"version": 1, "config": "d", "ss7": "pstn"}, "'ss7' must be an object or null"),
])
def test_malformed_configure_is_refused_with_the_reason(msg, why):
    w = World()
    r = w.unit.handle(dict(msg, op="configure", controller="host-a"))
    assert r["ok"] is False and why in r["error"]
    assert status(w)["config"] is None


def test_calls_and_close_without_a_sip_application_a_spare_has_no_calls():
    w = World()
    assert w.unit.handle({"op": "calls"}) == {"ok": True, "unit": "tmedia-1", "total": 0,
                                              "calls": [], "more": False}
    assert "call_id" in w.unit.handle({"op": "close", "controller": "host-a"})["error"]


class FakeStack:
    """The SIP application's side of the agent (board.AppLink: list_calls, close_call)."""

    def __init__(self, calls, busy=False):
        self.calls, self.busy, self.closed = calls, busy, []

    def list_calls(self, timeout):
        if self.busy:
            raise TimeoutError("busy")
        return [dict(c) for c in self.calls]

    def close_call(self, call_id, timeout):
        if self.busy:
            raise TimeoutError("busy")
        if any(c["call_id"] == call_id for c in self.calls):
            self.closed.append(call_id)
            return True
        return False


def test_the_unit_lists_its_calls_page_by_page_and_closes_one_for_its_controller():
    w = World()
    stack = FakeStack([{"call_id": f"c{i}", "cli": "sipp", "cld": "1000", "answered": True,
                        "gateway": "host-a"} for i in range(130)])
    w.unit.attach(stack)
    seen, after = [], None
    while True:
        page = w.unit.handle({"op": "calls", "after": after, "limit": 50})
        assert page["ok"] and page["total"] <= 130
        seen += [c["call_id"] for c in page["calls"]]
        if not page["more"]:
            break
        after = page["calls"][-1]["call_id"]
        del stack.calls[0]                        # calls end between two pages: none skipped
    assert set(seen) >= {f"c{i}" for i in range(3, 130)} and len(seen) == len(set(seen))
    assert w.unit.handle({"op": "close", "controller": "host-a", "call_id": "c7"}) == \
        {"ok": True, "unit": "tmedia-1", "call_id": "c7"}
    assert stack.closed == ["c7"]
    r = w.unit.handle({"op": "close", "controller": "host-a", "call_id": "zz"})
    assert r["ok"] is False and r["code"] == 404
    assert w.unit.handle({"op": "calls", "limit": 0})["ok"] is False
    assert w.unit.handle({"op": "calls", "after": 5})["ok"] is False


def test_a_busy_reactor_gives_a_refusal_in_time():
    w = World()
    w.unit.attach(FakeStack([], busy=True))
    assert "busy" in w.unit.handle({"op": "calls"})["error"]
    assert "busy" in w.unit.handle({"op": "close", "controller": "host-a", "call_id": "x"})["error"]


def test_a_board_that_says_it_serves_a_unit_gets_that_units_stacks_at_once():
    """A spare told to `assume` a unit reports it in its status before the sys_manager's
    published view says so: the sync must configure it from the board's own word (else
    its SIP stacks refuse calls, "SIP stack disabled", until the view catches up)."""
    w = World()
    w.engine.serves = lambda board: None          # the sys_manager's view: still a spare
    handle = w.unit.handle

    def board_says(msg):                          # the board adds what it serves
        reply = handle(msg)
        return dict(reply, serves="tmedia-1") if msg["op"] == "status" else reply
    w.unit.handle = board_says
    w.engine.step()                                # reload: configured as a spare (0 stacks)
    assert status(w)["stacks"] == []
    w.engine.next_sync = 0
    w.engine.step()                                # the sync sees the board serve tmedia-1
    st = status(w)
    assert st["config"]["unit"] == "tmedia-1"
    assert {s["kind"] for s in st["stacks"]} == {"SIP", "SS7", "ISDN"}


def test_a_configuration_made_for_another_unit_does_not_refuse_calls():
    """The spare, configured as a spare (no stacks), takes a unit over: until its
    configuration for that unit arrives it does not answer "SIP stack disabled"."""
    class Board:
        serves = "tmedia-1"

        def fields(self):
            return {}
    w = World()
    w.engine.serves = lambda board: None          # configured as a spare: no stacks
    w.engine.step()
    assert w.unit.admission() == (503, "Service Unavailable (SIP stack disabled)")
    w.unit.board = Board()                        # now serving tmedia-1, not configured for it
    assert w.unit.admission() is None
    Board.serves = None                           # back to the spare's own configuration
    assert w.unit.admission() == (503, "Service Unavailable (SIP stack disabled)")


def test_the_ss7_stack_flag_follows_the_reloaded_configuration():
    """The board passes the served unit's SS7 stack flag to its SS7 node: disabled in the
    configuration and reloaded, the unit says so, and SIP calls are still admitted."""
    w = World()
    w.engine.step()
    assert w.unit.ss7_enabled() is True
    w.store.set_stack("default", "tmedia-1", "ss7-0", False)
    w.store.request_reload("host-a")
    w.engine.step()
    assert w.unit.ss7_enabled() is False and w.unit.admission() is None

    class Board:                                   # a spare now serving tmedia-2, not yet
        serves = "tmedia-2"                        # configured for it: nothing refused

        def fields(self):
            return {}
    w.unit.board = Board()
    assert w.unit.ss7_enabled() is True


def test_the_ss7_configuration_reaches_every_board_and_an_unusable_one_is_reported():
    """The version's SS7 part (linkset, point codes, the units ending its links with their
    addresses, the trunk groups' CICs) is pushed with `configure` and kept by the unit; a
    reload whose SS7 part cannot run pushes none, says why and is not ok."""
    w = World()
    services = {"tmedia-1": {"address": "10.0.3.21/24", "vlans": []},
                "tmedia-2": {"address": "10.0.3.22/24", "vlans": []}}
    w.engine = Engine(settings(services=services), w.store, role_fn=lambda: w.role,
                      request_fn=w.request, send_fn=lambda a, m: None)
    w.store.put_linkset("default", "pstn", 1001, 2002)
    w.store.put_link("default", "pstn", 0, "tmedia-1")
    w.store.put_link("default", "pstn", 1, "tmedia-2")
    for name, unit, first, last in (("isup-1", "tmedia-1", 1, 30), ("isup-2", "tmedia-2", 31, 60)):
        w.store.put_trunk_group("default", name, {"linkset": "pstn", "unit": unit,
                                                  "cic_first": first, "cic_last": last})
    w.engine.step()
    pushed = w.unit.config["ss7"]
    assert pushed["units"] == [["tmedia-1", "10.0.3.21"], ["tmedia-2", "10.0.3.22"]]
    assert (pushed["opc"], pushed["dpc"], pushed["groups"]) == \
        (1001, 2002, {"tmedia-1": [1, 30], "tmedia-2": [31, 60]})
    assert w.store.versions[1]["snapshot"]["ss7"]["linksets"][0]["name"] == "pstn"
    w.store.delete_link("default", "pstn", 1)
    rid = w.store.request_reload("host-a")
    w.engine.step()
    result = w.store.reload_request(rid)["result"]
    assert result["ok"] is False and "needs links 0 and 1" in result["ss7"]["error"]
    assert result["units"] == {"tmedia-1": "ok"} and w.unit.config["ss7"] is None
