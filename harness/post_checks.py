"""The seed's post-switchover checks ("Following a switchover, you will want to test the
following items and verify that there are no errors"), one function per item.

Each check talks only to the OAM API of the current master (resolved from live roles)
and, where the item is about calls, to SIP through SIPp; each returns a `CheckResult`
(name, ok, detail, duration) and puts back what it changed (configuration rows, the
active configuration, flags), reloading when it changed something.

    prepared = prepare(testbed)        # before the fault: calls that must outlive it
    ... the switchover ...
    results = run_all(testbed, prepared)

`prepare` establishes a few long calls before the fault; "established calls are still
open" and "the system closes established calls" need calls from before the switchover
(without `prepare` the first fails, saying so; the second closes a call of its own).

The checks' SIPp agents use ports of their own (far ends on sipp-uas:5070 and :5071,
callers on sipp-uac:5072/5073), so they never meet a scenario's agents on 5060, and their
calls use called numbers starting with 9, routed to sipp-uas:5070 by a route the checks
add to every configuration when it is missing (and remove at the end).
"""
from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from .util import wait_for
from .oam import Oam
from .sipp import UAC_XML, CallRecord, DockerExecutor, SippLoad, SippUas
from .testbed import Testbed, log

PREFIX = "9"                        # the checks' called numbers
UAS_A = dict(port=5070, media_port=6200, control_port=8870)
UAS_B = dict(port=5071, media_port=6300, control_port=8871)
LONG_UAC = dict(port=5072, media_port=6400, control_port=8872)
UAC = dict(port=5073, media_port=6500, control_port=8873)
LONG_HOLD_S = 900                   # outlives any switchover and the checks
LONG_CALLS = 3
APP_TO_TOGGLE = "toolpack_engine"   # on the slave: stopping it disturbs no call


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    duration: float

    def to_dict(self) -> dict:
        return asdict(self)


class Prepared:
    """Far end A and a few long calls established before the fault."""

    def __init__(self, tb: Testbed):
        self.tb = tb
        self.sipp_dir = tb.dir / "sipp"
        self.uas_a = SippUas(self.executor("sipp-uas"), tb.ip("sipp-uas", "voip"),
                             name="pc-uas-a", **UAS_A)
        self.long: SippLoad | None = None
        self.added_routes: list[int] = []

    def executor(self, node: str) -> DockerExecutor:
        return DockerExecutor(self.tb.container(node), self.sipp_dir, "/work")

    def start(self, oam: Oam, long_calls: int = LONG_CALLS) -> "Prepared":
        try:
            self.ensure_routes(oam)
            self.uas_a.start()
            if long_calls:
                self.long = SippLoad(self.executor("sipp-uac"), f"{self.tb.ip('tmedia-1', 'voip')}:5060",
                                     self.tb.ip("sipp-uac", "voip"), rate=5, hold_s=LONG_HOLD_S,
                                     calls=long_calls, name="pc-long", service=f"{PREFIX}000",
                                     **LONG_UAC)
                self.long.start()
                wait_for(lambda: len(self.open_long_calls()) == long_calls, 20,
                         f"{long_calls} long calls answered")
        except BaseException:
            try:
                self.finish(oam)   # leave no agent holding the checks' ports
            except Exception as exc:
                log(f"post-checks: clean-up after a failed prepare failed too: {exc}")
            raise
        return self

    def ensure_routes(self, oam: Oam) -> None:
        """The checks' route (prefix 9 to far end A) in every configuration, then reload."""
        uas, added = self.tb.ip("sipp-uas", "voip"), []
        for cfg in oam.get("/configurations")["configurations"]:
            routes = oam.get("/routes", config=cfg["name"])["routes"]
            if not any(r["prefix"] == PREFIX and r["host"] == uas and r["port"] == UAS_A["port"]
                       for r in routes):
                added.append(oam.post("/routes", {"config": cfg["name"], "prefix": PREFIX,
                                                  "host": uas, "port": UAS_A["port"]})["id"])
        if added:
            self.added_routes += added
            oam.reload()

    def open_long_calls(self) -> list[CallRecord]:
        """Long calls answered and not ended, as their caller (SIPp) sees them."""
        if self.long is None:
            return []
        return [c for c in self.long.calls() if c.answer_t is not None and not c.ended
                and c.peer_bye_t is None]

    def finish(self, oam: Oam | None) -> None:
        """Close the long calls still open (through the OAM), stop the agents, remove the
        routes added for the checks."""
        try:
            if oam is not None:
                for c in self.open_long_calls():
                    oam.request("DELETE", f"/calls/{c.call_id}")
                if self.long is not None:
                    wait_for(lambda: not self.open_long_calls(), 10, "the long calls closed")
        finally:
            if self.long is not None:
                self.long.stop(grace_s=5)
            self.uas_a.stop(grace_s=2)
            if oam is not None and self.added_routes:
                for rid in self.added_routes:
                    oam.request("DELETE", f"/routes/{rid}")
                self.added_routes = []
                oam.reload()


def prepare(tb: Testbed, long_calls: int = LONG_CALLS) -> Prepared:
    """Before the fault: far end A up, the checks' route in place, `long_calls` calls
    answered and held (they must still be open after the switchover)."""
    return Prepared(tb).start(Oam.master(tb), long_calls)


class Checks:
    def __init__(self, tb: Testbed, prepared: Prepared, oam: Oam):
        self.tb, self.p, self.oam = tb, prepared, oam
        self.uas_ip = tb.ip("sipp-uas", "voip")
        self.uas_b: SippUas | None = None
        self.n = 0

    # ---- helpers --------------------------------------------------------------------
    def scenario_for(self, caller: str) -> Path:
        """The standard caller scenario with another From user (the account)."""
        path = self.p.sipp_dir / f"pc-uac-{caller}.xml"
        text = UAC_XML.read_text().replace("sip:sipp@", f"sip:{caller}@").replace(
            "From: sipp <", f"From: {caller} <")
        path.write_text(text)
        return path

    def call(self, number: str, caller: str = "sipp", calls: int = 1, rate: float = 5,
             hold_s: float = 0.5) -> list[CallRecord]:
        """Place `calls` calls to `number` and return the callers' records once done."""
        self.n += 1
        kw = {} if caller == "sipp" else {"scenario": self.scenario_for(caller)}
        load = SippLoad(self.p.executor("sipp-uac"), f"{self.tb.ip('tmedia-1', 'voip')}:5060",
                        self.tb.ip("sipp-uac", "voip"), rate=rate, hold_s=hold_s, calls=calls,
                        name=f"pc-call-{self.n}", service=number, recv_timeout_s=5, **UAC, **kw)
        load.start()
        try:
            if not load.wait():
                raise AssertionError(f"SIPp calls to {number} did not finish in time")
        finally:
            load.stop(grace_s=0)
        return load.calls()

    def far_end_of(self, call_id: str) -> str | None:
        """Which far end (A, B) got a leg of this call; None: neither."""
        for name, uas in (("A", self.p.uas_a), ("B", self.uas_b)):
            if uas is not None and any(leg.orig == call_id for leg in uas.calls()):
                return name
        return None

    def reload(self) -> dict:
        return self.oam.reload()

    def unit_status(self, unit: str = "tmedia-1") -> dict:
        return self.oam.get("/status")["units"][unit]["status"] or {}

    def wait_unit(self, cond, what: str, deadline_s: float = 5) -> dict:
        """The unit's status as the master's sys_manager last polled it, until cond holds."""
        return wait_for(lambda: (st := self.unit_status()) and cond(st) and st, deadline_s, what)

    @staticmethod
    def one(calls: list[CallRecord]) -> CallRecord:
        if len(calls) != 1:
            raise AssertionError(f"expected one call, SIPp shows {len(calls)}")
        return calls[0]

    def expect_code(self, number: str, code: int, caller: str = "sipp") -> CallRecord:
        c = self.one(self.call(number, caller))
        if code == 200:
            if c.outcome != "completed":
                raise AssertionError(f"call to {number} from {caller}: {c.outcome} "
                                     f"(final {c.final_code}), expected completed")
        elif c.final_code != code:
            raise AssertionError(f"call to {number} from {caller}: final {c.final_code} "
                                 f"({c.outcome}), expected {code}")
        return c

    def expect_far_end(self, number: str, far: str) -> None:
        c = self.expect_code(number, 200)
        got = self.far_end_of(c.call_id)
        if got != far:
            raise AssertionError(f"call to {number} reached far end {got}, expected {far}")

    # ---- the seed's items -------------------------------------------------------------
    def established_calls_open(self) -> str:
        long = self.p.open_long_calls()
        if self.p.long is None or not long:
            raise AssertionError("no call established before the switchover is open "
                                 "(prepare() establishes them before the fault)")
        if len(long) != self.p.long.ncalls:
            raise AssertionError(f"only {len(long)} of {self.p.long.ncalls} long calls still open")
        listed = {c["call_id"]: c for c in self.oam.get("/calls")["calls"]}
        missing = [c.call_id for c in long if listed.get(c.call_id, {}).get("state") != "answered"]
        if missing:
            raise AssertionError(f"open calls not listed as answered by the master's OAM: {missing}")
        active = self.unit_status().get("calls_active", 0)
        if active < len(long):
            raise AssertionError(f"the unit has {active} active calls, fewer than the {len(long)} open")
        return (f"{len(long)} calls established before the switchover: open at the caller, "
                f"listed by {self.oam.host}, unit has {active} active")

    def new_calls_accepted(self) -> str:
        calls = self.call(f"{PREFIX}100", calls=10, rate=10, hold_s=1)
        bad = [(c.call_id, c.outcome, c.final_code) for c in calls if c.outcome != "completed"]
        if bad:
            raise AssertionError(f"{len(bad)} of {len(calls)} new calls not completed: {bad[:3]}")
        gws = {c.gateway for c in calls}
        if gws != {self.oam.host}:
            raise AssertionError(f"new calls routed by {gws}, expected the master {self.oam.host}")
        return f"{len(calls)} new calls completed, routed by {self.oam.host}"

    def system_closes_calls(self) -> str:
        long, own = self.p.open_long_calls(), None
        if not long:   # none from before the fault: establish one of our own
            own = SippLoad(self.p.executor("sipp-uac"), f"{self.tb.ip('tmedia-1', 'voip')}:5060",
                           self.tb.ip("sipp-uac", "voip"), rate=1, hold_s=LONG_HOLD_S, calls=1,
                           name="pc-close", service=f"{PREFIX}300", **UAC).start()
            long = wait_for(lambda: [c for c in own.calls() if c.answer_t and not c.ended], 15,
                            "a call to close answered")
        try:
            target = long[0]
            wait_for(lambda: any(c["call_id"] == target.call_id
                                 for c in self.oam.get("/calls")["calls"]), 5, "the call listed")
            self.oam.delete(f"/calls/{target.call_id}")
            src = own or self.p.long
            rec = wait_for(lambda: next((c for c in src.calls() if c.call_id == target.call_id
                                         and c.peer_bye_t), None), 10, "the network's BYE at the caller")
            far = wait_for(lambda: next((leg for leg in self.p.uas_a.calls() if leg.orig == target.call_id
                                         and leg.bye_sent_t), None), 10, "the BYE at the far end")
            wait_for(lambda: all(c["call_id"] != target.call_id
                                 for c in self.oam.get("/calls")["calls"]), 5, "the call gone from the list")
        finally:
            if own is not None:
                own.stop(grace_s=5)
        return (f"closed {target.call_id} via {self.oam.host}: BYE from the network at the caller "
                f"after {rec.peer_bye_t - rec.answer_t:.1f} s of call, far end got BYE too ({far.call_id})")

    def switch_configurations(self) -> str:
        configs = self.oam.get("/configurations")["configurations"]
        current = next(c["name"] for c in configs if c["active"])
        other = next((c["name"] for c in configs if not c["active"]), None)
        if other is None:
            raise AssertionError("only one configuration: nothing to switch to")
        try:
            self.oam.post(f"/configurations/{other}/activate")
            r = self.reload()
            if r["config"] != other:
                raise AssertionError(f"reload loaded {r['config']}, expected {other}")
            self.wait_unit(lambda st: (st.get("config") or {}).get("version") == r["version"],
                           f"tmedia-1 configured with {other} version {r['version']}")
            self.expect_code(f"{PREFIX}400", 200)
        finally:
            self.oam.post(f"/configurations/{current}/activate")
            back = self.reload()
        self.wait_unit(lambda st: (st.get("config") or {}).get("version") == back["version"],
                       f"tmedia-1 back on {current}")
        return (f"{current} -> {other} (version {r['version']}, unit configured, call completed) "
                f"-> {current} (version {back['version']})")

    def application_run_state(self) -> str:
        """Don't Run, then Run, for an application of the slave (on the master, stopping
        any of the four would disturb the system: engine or gateway hand over, and
        without tboamapp there is no API to set it back). With the slave down (a host
        fault), the flag is stored and read back; its effect waits for the host."""
        slave = next(h for h in ("host-a", "host-b") if h != self.oam.host)
        path = f"/applications/{APP_TO_TOGGLE}"
        before = self.oam.get(path, host=slave)
        if before["state"] == "unreachable":
            for run in (False, True):
                got = self.oam.put(path, {"run": run}, host=slave)
                if got["run"] is not run:
                    raise AssertionError(f"flag of {APP_TO_TOGGLE} on {slave} reads {got['run']} after "
                                         f"setting {run}")
            return (f"{slave} is down: {APP_TO_TOGGLE} set to Don't Run and back to Run (stored and "
                    f"read back; the effect is checked while the slave is up)")
        if before["state"] != "running":
            raise AssertionError(f"{APP_TO_TOGGLE} on {slave} is {before['state']} before the check")
        try:
            self.oam.put(path, {"run": False}, host=slave)
            wait_for(lambda: self.oam.get(path, host=slave)["state"] == "stopped", 10,
                     f"{APP_TO_TOGGLE} stopped on {slave}")
        finally:
            self.oam.put(path, {"run": True}, host=slave)
        after = wait_for(lambda: (a := self.oam.get(path, host=slave))["state"] == "running" and a, 10,
                         f"{APP_TO_TOGGLE} running again on {slave}")
        return (f"{APP_TO_TOGGLE} on {slave}: Don't Run -> stopped, Run -> running "
                f"(pid {before['pid']} -> {after['pid']})")

    def trunks_enable_disable(self) -> str:
        trunk = self.oam.get("/trunks")["trunks"]
        trunk = next(t for t in trunk if t["unit"] == "tmedia-1" and t["enabled"])
        path = f"/trunks/{trunk['unit']}/{trunk['name']}"

        def reported(st, enabled):
            return any(t["name"] == trunk["name"] and t["enabled"] is enabled for t in st.get("trunks", []))
        try:
            self.oam.put(path, {"enabled": False})
            v = self.reload()["version"]
            self.wait_unit(lambda st: st["config"]["version"] == v and reported(st, False),
                           f"{trunk['name']} disabled on the unit")
        finally:
            self.oam.put(path, {"enabled": True})
            v2 = self.reload()["version"]
        self.wait_unit(lambda st: st["config"]["version"] == v2 and reported(st, True),
                       f"{trunk['name']} enabled on the unit")
        return f"trunk {trunk['unit']}/{trunk['name']}: disabled (version {v}), enabled (version {v2})"

    def stacks_enable_disable(self) -> str:
        stacks = [s for s in self.oam.get("/stacks")["stacks"] if s["unit"] == "tmedia-1" and s["enabled"]]
        kinds = {s["kind"] for s in stacks}
        if kinds != {"SIP", "SS7", "ISDN"}:
            raise AssertionError(f"tmedia-1 has enabled stacks {sorted(kinds)}, expected SIP, SS7, ISDN")

        def reported(st, enabled):
            have = {s["name"]: s["enabled"] for s in st.get("stacks", [])}
            return all(have.get(s["name"]) is enabled for s in stacks)
        try:
            for s in stacks:
                self.oam.put(f"/stacks/{s['unit']}/{s['name']}", {"enabled": False})
            v = self.reload()["version"]
            self.wait_unit(lambda st: st["config"]["version"] == v and reported(st, False)
                           and st["sip_accepting"] is False, "stacks disabled on the unit")
            self.expect_code(f"{PREFIX}500", 503)
        finally:
            for s in stacks:
                self.oam.put(f"/stacks/{s['unit']}/{s['name']}", {"enabled": True})
            v2 = self.reload()["version"]
        self.wait_unit(lambda st: st["config"]["version"] == v2 and reported(st, True)
                       and st["sip_accepting"] is True, "stacks enabled on the unit")
        self.expect_code(f"{PREFIX}501", 200)
        names = ", ".join(f"{s['kind']} {s['name']}" for s in stacks)
        return f"{names}: disabled (SIP call refused 503), enabled again (SIP call completed)"

    def routes_add_remove_modify(self) -> str:
        self.uas_b = SippUas(self.p.executor("sipp-uas"), self.uas_ip, name="pc-uas-b", **UAS_B).start()
        route = None
        try:
            route = self.oam.post("/routes", {"prefix": f"{PREFIX}5", "host": self.uas_ip,
                                              "port": UAS_B["port"]})
            self.reload()
            self.expect_far_end(f"{PREFIX}500", "B")                       # added: to B
            self.oam.put(f"/routes/{route['id']}", {"prefix": f"{PREFIX}6"})
            self.reload()
            self.expect_far_end(f"{PREFIX}600", "B")                       # modified: 96 to B,
            self.expect_far_end(f"{PREFIX}500", "A")                       # 95 back to the 9 route
            self.oam.delete(f"/routes/{route['id']}")
            route = None
            self.reload()
            self.expect_far_end(f"{PREFIX}600", "A")                       # removed
        finally:
            if route is not None:
                self.oam.request("DELETE", f"/routes/{route['id']}")
                self.reload()
            self.uas_b.stop(grace_s=2)
        return (f"added {PREFIX}5 -> far end B (call reached B), modified to {PREFIX}6 (96 reached B, "
                f"95 reached A), removed (96 reached A)")

    def accounts_add_remove_modify(self) -> str:
        name = f"pc-{int(time.time() * 1000) % 10**8}"
        added = False
        try:
            self.oam.post("/accounts", {"name": name, "enabled": False, "max_calls": 5})
            added = True
            self.reload()
            self.expect_code(f"{PREFIX}700", 403, caller=name)              # disabled
            self.oam.put(f"/accounts/{name}", {"enabled": True})
            self.reload()
            self.expect_code(f"{PREFIX}701", 200, caller=name)              # enabled
            self.oam.put(f"/accounts/{name}", {"max_calls": 0})
            self.reload()
            self.expect_code(f"{PREFIX}702", 486, caller=name)              # at its limit
            self.oam.delete(f"/accounts/{name}")
            added = False
            if self.oam.request("GET", f"/accounts/{name}").status != 404:
                raise AssertionError(f"account {name} still there after DELETE")
            self.reload()
            self.expect_code(f"{PREFIX}703", 200, caller=name)              # no account: no limit
        finally:
            if added:
                self.oam.request("DELETE", f"/accounts/{name}")
                self.reload()
        return (f"account {name}: added disabled (403), enabled (completed), max_calls 0 (486), "
                f"removed (completed: a caller with no account is not limited)")


CHECKS = [
    ("established calls are still open", Checks.established_calls_open),
    ("new incoming calls are accepted", Checks.new_calls_accepted),
    ("the system closes established calls", Checks.system_closes_calls),
    ("switch configurations (with reload)", Checks.switch_configurations),
    ("change the Run / Don't Run state of an application", Checks.application_run_state),
    ("enable / disable trunks (with reload)", Checks.trunks_enable_disable),
    ("enable / disable stacks SS7, SIP, ISDN (with reload)", Checks.stacks_enable_disable),
    ("add / remove / modify gateway routes (with reload)", Checks.routes_add_remove_modify),
    ("add / remove / modify gateway accounts (with reload)", Checks.accounts_add_remove_modify),
]


def run_all(tb: Testbed, prepared: Prepared | None = None) -> list[CheckResult]:
    """Every post-switchover check against the current master; the prepared calls (or
    the far end started here) are closed and stopped at the end."""
    oam = Oam.master(tb)
    p = prepared or Prepared(tb).start(oam, long_calls=0)
    p.ensure_routes(oam)    # the master may have reloaded since prepare()
    checks = Checks(tb, p, oam)
    results = []
    try:
        for name, fn in CHECKS:
            t0 = time.monotonic()
            try:
                detail, ok = fn(checks), True
            except Exception as exc:   # one failed check must not stop the others
                detail, ok = f"{exc}", False
                log(f"post-check '{name}' failed: {traceback.format_exc(limit=4)}")
            results.append(CheckResult(name, ok, detail, round(time.monotonic() - t0, 2)))
            log(f"post-check {'ok ' if ok else 'FAIL'} {name} ({results[-1].duration:.1f} s): {detail}")
    finally:
        t0 = time.monotonic()
        try:
            p.finish(oam)
        except Exception as exc:   # reported, not raised: the results above stand
            results.append(CheckResult("clean-up after the checks", False, str(exc),
                                       round(time.monotonic() - t0, 2)))
    return results
