"""The seed's post-switchover checks ("Following a switchover, you will want to test the
following items and verify that there are no errors"), one function per item.

Each check acts through the OAM API of the current master (resolved from live roles), as
an operator would, and proves the effect somewhere else: where the next call lands and
how it is refused (SIP through SIPp), the unit's own status (its control port), the
process table of the host (`docker exec`). Reading back what the API was just told proves
nothing. Each returns a `CheckResult` (name, status "ok" / "failed" / "n/a", detail,
duration) and puts back what it changed (configuration rows, the active configuration,
flags), reloading when it changed something. "n/a": the item cannot apply to this
operation (Run / Don't Run of a slave that is down), which is never counted as ok.

    prepared = prepare(testbed)        # before the fault: calls that must outlive it
    ... the switchover ...
    results = run_all(testbed, prepared)

    results = run_config_checks(testbed)   # after a MySQL operation: routes, accounts

`prepare` establishes a few long calls before the fault; "established calls are still
open" and "the system closes established calls" need calls from before the switchover
(without `prepare` the first fails, saying so; the second closes a call of its own). The
long calls re-INVITE every few seconds (scenarios/sipp/uac_reinvite.xml), so a dialog
still open end to end shows as a round that crossed the unit to the far end and back.

The checks' SIPp agents use ports of their own (far ends on sipp-uas:5070 and :5071,
callers on sipp-uac:5072/5073), so they never meet a scenario's agents on 5060, and their
calls use called numbers starting with 9: the active configuration routes 9 to far end A
(:5070), every other configuration to far end B (:5071), so switching configurations
shows in where the next call lands. The checks add those routes when they are missing
(and remove or put back what they changed at the end).
"""
from __future__ import annotations

import contextlib
import json
import secrets
import socket
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from .faults import NFT_TABLE
from .util import wait_for
from .oam import Oam
from .sipp import SCENARIO_DIR, UAC_XML, CallRecord, Executor, SippLoad, SippUas, TraceLine
from .testbed import BOARDS, Testbed, log
from .verdict import FAILED, NA, OK, UNKNOWN, SubCheck

PREFIX = "9"                        # the checks' called numbers
UAS_A = dict(port=5070, media_port=6200, control_port=8870)
UAS_B = dict(port=5071, media_port=6300, control_port=8871)
LONG_UAC = dict(port=5072, media_port=6400, control_port=8872)
UAC = dict(port=5073, media_port=6500, control_port=8873)
LONG_HOLD_S = 900                   # outlives any switchover and the checks (SIPp bound;
                                    # uac_reinvite.xml holds for 450 rounds of 2 s)
LONG_CALLS = 3
APP_TO_TOGGLE = "toolpack_engine"   # on the slave: stopping it disturbs no call
UAC_REINVITE_XML = SCENARIO_DIR / "uac_reinvite.xml"
UAS_REINVITE_XML = SCENARIO_DIR / "uas_reinvite.xml"
REINVITE_EVERY_S = 2.0              # the pause between two rounds in uac_reinvite.xml
SIP_DISABLED_REASON = "Service Unavailable (SIP stack disabled)"   # the unit's own refusal
SS7_DISABLED_REASON = "SS7 stack disabled"          # the interworking's (emulator/ss7/interwork.py)
UNIT_CONTROL_PORT = 7000


class NotApplicable(Exception):
    """Raised by a check that cannot apply to this operation; the reason is the detail."""


@dataclass
class CheckResult:
    name: str
    status: str          # "ok", "failed" or "n/a"
    detail: str
    duration: float

    def __post_init__(self):
        if self.status not in (OK, FAILED, NA):
            raise ValueError(f"check {self.name}: status {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_dict(self) -> dict:
        return dict(asdict(self), ok=self.ok)


def subcheck(results: list[CheckResult], name: str = "post-checks") -> SubCheck:
    """The checks as one sub-check of an operation's verdict: failed if any failed; n/a
    only when none applied; otherwise ok, saying which did not apply."""
    bad = [f"{r.name}: {r.detail}" for r in results if r.status == FAILED]
    na = [r.name for r in results if r.status == NA]
    data = {"ok": sum(r.ok for r in results), "failed": len(bad), "n/a": len(na)}
    if bad:
        return SubCheck(name, FAILED, "; ".join(bad), data)
    if results and len(na) == len(results):
        return SubCheck(name, NA, "none applied: " + ", ".join(na), data)
    if not results:
        return SubCheck(name, UNKNOWN, "no check ran", data)
    return SubCheck(name, OK, f"{data['ok']} ok" + (f", n/a: {', '.join(na)}" if na else ""), data)


@dataclass(frozen=True)
class Round:
    """One in-dialog re-INVITE across the unit, by the clock of each end's trace (the
    containers share the machine's clock)."""
    sent: float       # the caller sent the re-INVITE
    far_in: float     # the far end received it: the unit relayed it
    far_ok: float     # the far end answered 200
    ok: float         # the caller received 200


def _reinvites(lines: list[TraceLine], request_dir: str) -> dict[str, list[tuple[float, float]]]:
    """Per Call-ID, (request time, 200 time) of each re-INVITE answered 200, in CSeq order;
    `request_dir` is the direction of the re-INVITE in this trace (S caller, R far end)."""
    first: dict[str, int] = {}
    req: dict[tuple[str, int], float] = {}
    ok: dict[tuple[str, int], float] = {}
    for ln in lines:
        if ln.method != "INVITE":
            continue
        key = (ln.call_id, ln.cseq)
        if ln.code is None and ln.direction == request_dir:
            first.setdefault(ln.call_id, ln.cseq)
            if ln.cseq > first[ln.call_id]:
                req.setdefault(key, ln.t)          # retransmissions keep the first time
        elif ln.code == 200 and ln.direction != request_dir and key in req:
            ok.setdefault(key, ln.t)
    out: dict[str, list[tuple[float, float]]] = {}
    for (cid, cseq) in sorted(ok, key=lambda k: (k[0], k[1])):
        out.setdefault(cid, []).append((req[(cid, cseq)], ok[(cid, cseq)]))
    return out


def dialog_rounds(caller: list[TraceLine], far: list[TraceLine],
                  leg_of: dict[str, str | None]) -> dict[str, list[Round]]:
    """Complete re-INVITE rounds per caller Call-ID: sent by the caller, received by a
    far-end leg of that call (`leg_of`: far-end Call-ID -> the caller's, from X-Tb-Call),
    answered 200 there, and 200 back at the caller, in that order. The legs' CSeqs are the
    unit's own, so the halves are paired by time. A 200 the unit made up itself has no
    far-end half and makes no round."""
    far_by_call: dict[str, list[tuple[float, float]]] = {}
    for leg, halves in _reinvites(far, "R").items():
        if leg_of.get(leg):
            far_by_call.setdefault(leg_of[leg], []).extend(halves)
    out: dict[str, list[Round]] = {}
    for cid, halves in _reinvites(caller, "S").items():
        free = sorted(far_by_call.get(cid, []))
        for sent, ok in halves:
            match = next((f for f in free if sent <= f[0] <= f[1] <= ok), None)
            if match is not None:
                free.remove(match)
                out.setdefault(cid, []).append(Round(sent, match[0], match[1], ok))
    return out


def unit_control(tb: Testbed, board: str, msg: dict, timeout: float = 1.0) -> dict | None:
    """One request to a board's control port (UDP JSON), over ctrl-a then ctrl-b: the
    unit's own answer, not a host's view of it. None: no answer on either."""
    for net in ("ctrl-a", "ctrl-b"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            try:
                s.sendto(json.dumps(dict(msg, seq=int(time.time() * 1000) % 10**9)).encode(),
                         (tb.ip(board, net), UNIT_CONTROL_PORT))
                return json.loads(s.recvfrom(65535)[0])
            except (OSError, ValueError):
                continue
    return None


class Prepared:
    """Far end A and a few long calls established before the fault."""

    def __init__(self, tb: Testbed):
        self.tb = tb
        self.sipp_dir = tb.dir / "sipp"
        # the agents' directories are this run's own: a SIPp that opens its traces where an
        # earlier one still writes (same name, same files) would truncate them under it.
        # An operation's long calls once read back with a call's INVITE gone from the
        # caller's trace (2 runs of power-off-master in the external-db variant)
        self.tag = secrets.token_hex(3)
        self.uas_a = SippUas(self.executor("sipp-uas"), tb.ip("sipp-uas", "voip"),
                             name=self.agent("uas-a"), scenario=UAS_REINVITE_XML, **UAS_A)
        self.long: SippLoad | None = None
        self.added_routes: list[int] = []
        self.removed_routes: list[dict] = []   # rows in the way of the checks' routes

    def executor(self, node: str) -> Executor:
        return self.tb.sipp_executor(node)

    def agent(self, role: str) -> str:
        """An agent's name (and directory) for this run of the checks."""
        return f"pc-{self.tag}-{role}"

    def start(self, oam: Oam, long_calls: int = LONG_CALLS) -> "Prepared":
        try:
            self.ensure_routes(oam)
            self.uas_a.start()
            if long_calls:
                self.long = SippLoad(self.executor("sipp-uac"), f"{self.tb.ip('tmedia-1', 'voip')}:5060",
                                     self.tb.ip("sipp-uac", "voip"), rate=5, hold_s=LONG_HOLD_S,
                                     calls=long_calls, name=self.agent("long"), service=f"{PREFIX}000",
                                     scenario=UAC_REINVITE_XML, **LONG_UAC)
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
        """The checks' routes, then a reload if one changed: prefix 9 to far end A in the
        active configuration and to far end B in every other one. A prefix-9 row to the
        other far end (an interrupted run's) would compete with it: it is taken out for the
        time of the checks and put back at the end."""
        uas, changed = self.tb.ip("sipp-uas", "voip"), False
        for cfg in oam.get("/configurations")["configurations"]:
            want, other = (UAS_A, UAS_B) if cfg["active"] else (UAS_B, UAS_A)
            rows = [r for r in oam.get("/routes", config=cfg["name"])["routes"]
                    if r["prefix"] == PREFIX and r["host"] == uas]
            for r in rows:
                if r["port"] == other["port"]:
                    oam.delete(f"/routes/{r['id']}")
                    self.removed_routes.append(r)
                    changed = True
            if not any(r["port"] == want["port"] for r in rows):
                self.added_routes.append(oam.post("/routes", {"config": cfg["name"], "prefix": PREFIX,
                                                              "host": uas, "port": want["port"]})["id"])
                changed = True
        if changed:
            oam.reload()

    def open_long_calls(self) -> list[CallRecord]:
        """Long calls answered and not ended, as their caller (SIPp) sees them."""
        if self.long is None:
            return []
        return [c for c in self.long.calls() if c.answer_t is not None and not c.ended
                and c.peer_bye_t is None]

    def finish(self, oam: Oam | None) -> None:
        """Close the long calls still open (through the OAM), stop the agents, put the
        routes back as they were."""
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
            if oam is not None and (self.added_routes or self.removed_routes):
                for rid in self.added_routes:
                    oam.request("DELETE", f"/routes/{rid}")
                for r in self.removed_routes:
                    oam.request("POST", "/routes", {k: r[k] for k in ("config", "prefix", "priority",
                                                                      "host", "port")})
                self.added_routes, self.removed_routes = [], []
                oam.reload()


def prepare(tb: Testbed, long_calls: int = LONG_CALLS) -> Prepared:
    """Before the fault: far end A up, the checks' routes in place, `long_calls` calls
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
             hold_s: float = 0.0) -> list[CallRecord]:
        """Place `calls` calls to `number` and return the callers' records once done.
        No hold: what a check judges is where the call went and its answer (and its BYE
        crossing the unit), and each operation places about 20 of these."""
        self.n += 1
        kw = {} if caller == "sipp" else {"scenario": self.scenario_for(caller)}
        load = SippLoad(self.p.executor("sipp-uac"), f"{self.tb.ip('tmedia-1', 'voip')}:5060",
                        self.tb.ip("sipp-uac", "voip"), rate=rate, hold_s=hold_s, calls=calls,
                        name=self.p.agent(f"call-{self.n}"), service=number, recv_timeout_s=5, **UAC, **kw)
        load.start()
        try:
            if not load.wait():
                raise AssertionError(f"SIPp calls to {number} did not finish in time")
        finally:
            load.stop(grace_s=0)
        return load.calls()

    @contextlib.contextmanager
    def far_end_b(self):
        """Far end B for the time of a check (a caller of these checks may run its own)."""
        if self.uas_b is not None and self.uas_b.running:
            yield self.uas_b
            return
        self.uas_b = SippUas(self.p.executor("sipp-uas"), self.uas_ip, name=self.p.agent("uas-b"),
                             scenario=UAS_REINVITE_XML, **UAS_B).start()
        try:
            yield self.uas_b
        finally:
            self.uas_b.stop(grace_s=2)

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

    def own_status(self, unit: str = "tmedia-1") -> dict | None:
        """The status of the board serving `unit`, as that board answers it."""
        for board in BOARDS:
            st = unit_control(self.tb, board, {"op": "status"})
            if st and st.get("ok") and st.get("serves") == unit:
                return st
        return None

    def wait_unit(self, cond, what: str, deadline_s: float = 5) -> dict:
        """The unit's own status (its board's answer) once cond holds."""
        return wait_for(lambda: (st := self.own_status()) and cond(st) and st, deadline_s, what)

    def wait_version(self, version: int, what: str, cond=lambda st: True) -> dict:
        return self.wait_unit(lambda st: (st.get("config") or {}).get("version") == version
                              and cond(st), f"tmedia-1 configured with version {version}{what}")

    @staticmethod
    def one(calls: list[CallRecord]) -> CallRecord:
        if len(calls) != 1:
            raise AssertionError(f"expected one call, SIPp shows {len(calls)}")
        return calls[0]

    def expect_code(self, number: str, code: int, caller: str = "sipp",
                    reason: str | None = None) -> CallRecord:
        """One call to `number`: completed (code 200) or refused with `code` and, when
        given, a reason phrase containing `reason` (whose refusal it is)."""
        c = self.one(self.call(number, caller))
        if code == 200:
            if c.outcome != "completed":
                raise AssertionError(f"call to {number} from {caller}: {c.outcome} "
                                     f"(final {c.final_code} {c.final_reason!r}), expected completed")
        elif c.final_code != code or (reason is not None and reason not in (c.final_reason or "")):
            raise AssertionError(f"call to {number} from {caller}: final {c.final_code} "
                                 f"{c.final_reason!r} ({c.outcome}), expected {code}"
                                 + (f" {reason!r}" if reason else ""))
        return c

    def expect_far_end(self, number: str, far: str) -> CallRecord:
        c = self.expect_code(number, 200)
        got = self.far_end_of(c.call_id)
        if got != far:
            raise AssertionError(f"call to {number} reached far end {got}, expected {far}")
        return c

    def rounds_after(self, calls: list[CallRecord], t0: float) -> dict[str, Round]:
        """The first complete re-INVITE round of each call that began after t0."""
        caller, far = self.p.long.shortmsg(), self.p.uas_a.shortmsg()
        legs = {leg.call_id: leg.orig for leg in self.p.uas_a.calls()}
        rounds = dialog_rounds(caller, far, legs)
        ids = {c.call_id for c in calls}
        return {cid: r for cid, rs in rounds.items() if cid in ids
                for r in [next((x for x in rs if x.sent >= t0), None)] if r is not None}

    # ---- Run / Don't Run: the host's process table ----------------------------------
    def pids(self, host: str, pattern: str) -> list[int]:
        """Pids of the processes of `host` whose command line matches `pattern` (pgrep -f
        inside the container)."""
        res = self.tb.container(host).exec_run(["pgrep", "-f", pattern])
        if res.exit_code == 1:     # pgrep: nothing matched
            return []
        if res.exit_code != 0:
            raise AssertionError(f"pgrep on {host} failed ({res.exit_code}): "
                                 f"{res.output.decode(errors='replace')}")
        return [int(x) for x in res.output.split()]

    def app_pids(self, host: str) -> list[int]:
        return self.pids(host, rf"emulator\.host\.app_runner {APP_TO_TOGGLE}$")

    def host_down(self, host: str) -> str | None:
        """Why `host` cannot apply a Run flag now (a host fault), from Docker and its own
        process table; None when it is up."""
        c = self.tb.container(host)
        c.reload()
        if c.status != "running":
            return f"{host} is down (container {c.status})"
        if c.exec_run(["nft", "list", "table", "inet", NFT_TABLE]).exit_code == 0:
            return f"{host} is cut off from its networks (nftables table {NFT_TABLE})"
        if not self.pids(host, r"emulator\.host\.service_monitor$"):
            return f"the Toolpack service of {host} is not running"
        return None

    # ---- the seed's items -------------------------------------------------------------
    def established_calls_open(self) -> str:
        t0 = time.time()
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
        # the dialogs themselves: a re-INVITE from each caller crosses the unit to the far
        # end, whose 200 comes back (the unit does not answer re-INVITEs on its own)
        deadline_s = 2 * REINVITE_EVERY_S + 10
        try:
            rounds = wait_for(lambda: len(r := self.rounds_after(long, t0)) == len(long) and r,
                              deadline_s, "a re-INVITE round of every long call")
        except Exception:
            done = self.rounds_after(long, t0)
            raise AssertionError(f"no re-INVITE answered 200 by the far end through the unit within "
                                 f"{deadline_s:.0f} s for {[c.call_id for c in long if c.call_id not in done]}"
                                 ) from None
        worst = max(r.ok - r.sent for r in rounds.values())
        return (f"{len(long)} calls established before the switchover: open at the caller, listed "
                f"by {self.oam.host}; each answered a re-INVITE end to end after the switchover "
                f"(caller -> unit -> far end A -> 200 back, slowest {worst * 1000:.0f} ms)")

    def new_calls_accepted(self) -> str:
        calls = self.call(f"{PREFIX}100", calls=10, rate=20, hold_s=0.5)
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
                           name=self.p.agent("close"), service=f"{PREFIX}300", **UAC).start()
            long = wait_for(lambda: [c for c in own.calls() if c.answer_t and not c.ended], 15,
                            "a call to close answered")
        try:
            target = long[0]
            wait_for(lambda: any(c["call_id"] == target.call_id
                                 for c in self.oam.get("/calls")["calls"]), 5, "the call listed")
            if own is None:
                # close between two re-INVITE rounds: a BYE crossing one would make the
                # caller abort on the 487 instead of hearing the network's BYE
                t = time.time()
                wait_for(lambda: self.rounds_after([target], t), 2 * REINVITE_EVERY_S + 5,
                         f"a re-INVITE round of {target.call_id} to close it after")
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
        """The other configuration routes 9 to far end B (ensure_routes): the switch shows
        in where the next call lands, and so does the switch back."""
        configs = self.oam.get("/configurations")["configurations"]
        current = next(c["name"] for c in configs if c["active"])
        other = next((c["name"] for c in configs if not c["active"]), None)
        if other is None:
            raise AssertionError("only one configuration: nothing to switch to")
        with self.far_end_b():
            self.expect_far_end(f"{PREFIX}400", "A")
            try:
                self.oam.post(f"/configurations/{other}/activate")
                r = self.reload()
                self.wait_version(r["version"], f" ({other})")
                self.expect_far_end(f"{PREFIX}401", "B")
            finally:
                self.oam.post(f"/configurations/{current}/activate")
                back = self.reload()
            self.wait_version(back["version"], f" ({current} again)")
            self.expect_far_end(f"{PREFIX}402", "A")
        return (f"{current}: call to far end A; {other} (version {r['version']}): the next call "
                f"reached far end B; {current} again (version {back['version']}): far end A")

    def application_run_state(self) -> str:
        """Don't Run, then Run, for an application of the slave (on the master, stopping
        any of the four would disturb the system: engine or gateway hand over, and
        without tboamapp there is no API to set it back), proven by the slave's process
        table: the process gone, then a new one. n/a when the slave is down."""
        slave = next(h for h in ("host-a", "host-b") if h != self.oam.host)
        down = self.host_down(slave)
        if down:
            raise NotApplicable(f"{down}: Run / Don't Run cannot take effect there")
        before = self.app_pids(slave)
        if len(before) != 1:
            raise AssertionError(f"{APP_TO_TOGGLE} on {slave}: processes {before} before the check, "
                                 f"expected one")
        path = f"/applications/{APP_TO_TOGGLE}"
        try:
            self.oam.put(path, {"run": False}, host=slave)
            wait_for(lambda: not self.app_pids(slave), 10,
                     f"{APP_TO_TOGGLE} (pid {before[0]}) gone from {slave}'s processes")
        finally:
            self.oam.put(path, {"run": True}, host=slave)
        after = wait_for(lambda: self.app_pids(slave), 10, f"{APP_TO_TOGGLE} back on {slave}")
        if before[0] in after:
            raise AssertionError(f"{APP_TO_TOGGLE} on {slave} has pid {before[0]} again")
        return (f"{APP_TO_TOGGLE} on {slave}: Don't Run -> pid {before[0]} gone from its processes, "
                f"Run -> started again as pid {after[0]}")

    def trunks_enable_disable(self) -> str:
        trunk = self.oam.get("/trunks")["trunks"]
        trunk = next(t for t in trunk if t["unit"] == "tmedia-1" and t["enabled"])
        path = f"/trunks/{trunk['unit']}/{trunk['name']}"

        def reported(st, enabled):
            return any(t["name"] == trunk["name"] and t["enabled"] is enabled for t in st.get("trunks", []))
        try:
            self.oam.put(path, {"enabled": False})
            v = self.reload()["version"]
            self.wait_version(v, f", {trunk['name']} disabled", lambda st: reported(st, False))
        finally:
            self.oam.put(path, {"enabled": True})
            v2 = self.reload()["version"]
        self.wait_version(v2, f", {trunk['name']} enabled", lambda st: reported(st, True))
        return f"trunk {trunk['unit']}/{trunk['name']}: disabled (version {v}), enabled (version {v2})"

    def stacks_enable_disable(self) -> str:
        """Each stack disabled on its own, with a reload each. SIP: new calls are refused
        with the unit's own reason. SS7 on the ss7 variant: a SIP call to tmedia-1's ISUP
        trunk group is refused (503, "SS7 stack disabled"), SIP calls go on. SS7 elsewhere
        and ISDN have no traffic: what changes is the unit's own report of the stack, and
        SIP calls go on."""
        stacks = {s["kind"]: s for s in self.oam.get("/stacks")["stacks"]
                  if s["unit"] == "tmedia-1" and s["enabled"]}
        if set(stacks) != {"SIP", "SS7", "ISDN"}:
            raise AssertionError(f"tmedia-1 has enabled stacks {sorted(stacks)}, expected SIP, SS7, ISDN")
        return "; ".join(self.one_stack_disabled(stacks[k], stacks, f"{PREFIX}5{i}")
                         for i, k in enumerate(("SIP", "SS7", "ISDN")))

    def isup_route(self) -> str | None:
        """The prefix routed to tmedia-1's ISUP trunk group where the testbed has SS7 (its
        node runs the interworking), else None."""
        from .isup_load import ISUP_PREFIX, node
        return ISUP_PREFIX["tmedia-1"] if node(self.tb, "tmedia-1").get("interworking") else None

    def one_stack_disabled(self, s: dict, stacks: dict, number: str) -> str:
        path = f"/stacks/{s['unit']}/{s['name']}"

        def only_it(enabled_it: bool):
            def cond(st):
                have = {x["name"]: x["enabled"] for x in st.get("stacks", [])}
                return all(have.get(o["name"]) is (enabled_it or o is not s) for o in stacks.values())
            return cond
        try:
            self.oam.put(path, {"enabled": False})
            v = self.reload()["version"]
            st = self.wait_version(v, f", only {s['name']} disabled", only_it(False))
            if st.get("sip_accepting") is not (s["kind"] != "SIP"):
                raise AssertionError(f"with {s['kind']} disabled the unit reports sip_accepting "
                                     f"{st.get('sip_accepting')}")
            if s["kind"] == "SIP":
                c = self.expect_code(f"{number}0", 503, reason=SIP_DISABLED_REASON)
                effect = f"a SIP call refused {c.final_code} {c.final_reason!r}"
            elif s["kind"] == "SS7" and self.isup_route():
                # the ss7 variant: a SIP call to tmedia-1's ISUP trunk group is refused by
                # its interworking (no IAM leaves), a SIP call still completes
                c = self.expect_code(f"{self.isup_route()}9{number}", 503, reason=SS7_DISABLED_REASON)
                self.expect_code(f"{number}0", 200)
                effect = (f"a call to tmedia-1's ISUP trunk group refused {c.final_code} "
                          f"{c.final_reason!r}, a SIP call still completed")
            else:
                self.expect_code(f"{number}0", 200)
                effect = "the unit reports it disabled, a SIP call still completed"
        finally:
            self.oam.put(path, {"enabled": True})
            v2 = self.reload()["version"]
        self.wait_version(v2, f", {s['name']} enabled again", only_it(True))
        if s["kind"] == "SIP":
            self.expect_code(f"{number}1", 200)
            effect += ", enabled again: completed"
        return f"{s['kind']} {s['name']} disabled (version {v}): {effect}"

    def routes_add_remove_modify(self) -> str:
        with self.far_end_b():
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
        return (f"added {PREFIX}5 -> far end B (call reached B), modified to {PREFIX}6 (96 reached B, "
                f"95 reached A), removed (96 reached A)")

    def accounts_add_remove_modify(self) -> str:
        name = f"pc-{int(time.time() * 1000) % 10**8}"
        added = False
        try:
            self.oam.post("/accounts", {"name": name, "enabled": False, "max_calls": 5})
            added = True
            self.reload()
            self.expect_code(f"{PREFIX}700", 403, caller=name, reason="is disabled")
            self.oam.put(f"/accounts/{name}", {"enabled": True})
            self.reload()
            self.expect_code(f"{PREFIX}701", 200, caller=name)
            self.oam.put(f"/accounts/{name}", {"max_calls": 0})
            self.reload()
            self.expect_code(f"{PREFIX}702", 486, caller=name, reason="at its limit")
            self.oam.delete(f"/accounts/{name}")
            added = False
            self.reload()
            self.expect_code(f"{PREFIX}703", 200, caller=name)              # no account: no limit
        finally:
            if added:
                self.oam.request("DELETE", f"/accounts/{name}")
                self.reload()
        return (f"account {name}: added disabled (403 'is disabled'), enabled (completed), "
                f"max_calls 0 (486 'at its limit'), removed (completed: a caller with no account "
                f"is not limited)")


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

# After a MySQL operation: the configuration still changes, reloads and takes effect.
CONFIG_CHECKS = [c for c in CHECKS if c[1] in (Checks.routes_add_remove_modify,
                                               Checks.accounts_add_remove_modify)]


def _run(tb: Testbed, p: Prepared, oam: Oam, items) -> list[CheckResult]:
    """Run `items` (name, check) in order against `oam`; p is finished at the end."""
    checks = Checks(tb, p, oam)
    results = []
    try:
        for name, fn in items:
            t0 = time.monotonic()
            try:
                detail, status = fn(checks), OK
            except NotApplicable as exc:
                detail, status = str(exc), NA
            except Exception as exc:   # one failed check must not stop the others
                detail, status = f"{exc}", FAILED
                log(f"post-check '{name}' failed: {traceback.format_exc(limit=4)}")
            results.append(CheckResult(name, status, detail, round(time.monotonic() - t0, 2)))
            log(f"post-check {status:6} {name} ({results[-1].duration:.1f} s): {detail}")
    finally:
        t0 = time.monotonic()
        try:
            p.finish(oam)
        except Exception as exc:   # reported, not raised: the results above stand
            results.append(CheckResult("clean-up after the checks", FAILED, str(exc),
                                       round(time.monotonic() - t0, 2)))
    return results


def run_all(tb: Testbed, prepared: Prepared | None = None) -> list[CheckResult]:
    """Every post-switchover check against the current master; the prepared calls (or
    the far end started here) are closed and stopped at the end."""
    oam = Oam.master(tb)
    p = prepared or Prepared(tb).start(oam, long_calls=0)
    p.ensure_routes(oam)    # the master may have reloaded since prepare()
    return _run(tb, p, oam, CHECKS)


def run_config_checks(tb: Testbed) -> list[CheckResult]:
    """After a MySQL operation: routes and accounts added, modified and removed, each with
    its reload, each proven by where calls land or how they are refused. A set-up that
    fails (no master, database unusable) is one failed result, not an exception."""
    t0 = time.monotonic()
    try:
        oam = Oam.master(tb)
        p = Prepared(tb).start(oam, long_calls=0)
    except Exception as exc:
        return [CheckResult("set up the configuration checks", FAILED, str(exc),
                            round(time.monotonic() - t0, 2))]
    return _run(tb, p, oam, CONFIG_CHECKS)
