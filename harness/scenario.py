"""Runs one operation of the matrix and composes its verdict (harness/verdict.py).

The flow: a steady SIPp load through both active units (tmedia-1 and tmedia-2, each
with RTP), the fault injected once enough calls are established, the switchover waited
for; once the window after the fault is over, the callers stop placing calls (SIPp's
own count of the calls it placed is what is judged). While the load's last calls are
held: the seed's post-switchover checks (or, after a MySQL operation, the configuration
checks) with the fault still in place, then the heal, with a second load running
through it until the system is healthy again (after the main load for SS7 faults and
the unit faults judged from captures, see heal_early); the load runs to its end. Every
sub-check (calls, switchover, roles, post-checks, media, heal, logs) is judged, the
verdict composed, and only then is result.json written, once, whatever happened: an
operation that raised is written as `error`."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from . import logscan, post_checks, roles
from . import verdict as vd
from .checks import Verdict, check, load_problems, open_load_problems
from .faults import FaultSet, Timers, fault_class, from_spec
from .faults import prepare as prepare_fault
from .history import History
from . import isup_load
from . import unit_ops
from .arp import GarpCapture, missing_announcements
from .faults._units import settle
from .probes import oam_auth_check, restarted_check
from .media import MARGIN_S, MediaCapture, gap_bound_ms, judge as judge_media, kept_across, units_media_ips
from .sipp import SCENARIO_DIR, UAC_XML, CallRecord, SippLoad, SippUas
from .testbed import HOSTS, Testbed, TestbedError, log
from .util import each, wait_for

RECV_TIMEOUT_S = 8.0
# unit faults whose effect is read from the unit (its placement, its boot record), not
# from a capture: healed while the main load's last calls are held (see _run)
HEAL_EARLY_UNIT_KINDS = unit_ops.LOST_KINDS + ("unit_ctrl_cut",)
# how long after the fault its effect on the unit may take: the watchdog's reboot, the
# slowest, comes its timeout after the fault
UNIT_EFFECT_S = Timers.from_env(os.environ).watchdog_s + 5.0
WARMUP_SLACK_S = 5.0    # the main load's calls beyond warm-up and window (see _run)


class RoleWatcher(threading.Thread):
    """Samples both hosts' roles through the OAM API and records every change (the
    operator's view; the runner waits on it for the new master)."""

    def __init__(self, tb: Testbed, history: History, interval: float = 0.25):
        super().__init__(daemon=True)
        self.tb, self.history, self.interval = tb, history, interval
        self.stop_flag = threading.Event()
        self.samples: list[tuple[float, dict]] = []

    def run(self):
        last = None
        while not self.stop_flag.is_set():
            roles = self.tb.roles()
            now = time.time()
            self.samples.append((now, roles))
            if roles != last:
                self.history.event("role", roles=roles)
                last = roles
            self.stop_flag.wait(self.interval)

    def first_active(self, host: str, after: float) -> float | None:
        return next((t for t, r in self.samples if t >= after and r.get(host) == "active"), None)

    def stop(self):
        self.stop_flag.set()
        if self.is_alive():
            self.join(timeout=5)


class Phases:
    """Where an operation's wall time goes (result.json `phase_s`): each mark records
    the time since the previous one under its name."""

    def __init__(self, result: dict):
        self.out = result.setdefault("phase_s", {})
        self.last = time.time()

    def mark(self, name: str) -> None:
        now = time.time()
        self.out[name] = round(now - self.last, 2)
        self.last = now


def make_fault(tb: Testbed, op, master: str, slave: str):
    return from_spec(tb, op.fault, master, slave)


# The loads of one operation: per active unit one SIPp caller with RTP (the media
# sample) and one signalling only (the rest of the rate). Ports kept apart from the
# post-checks' agents, 5070-5073.
LOAD_UNITS = ("tmedia-1", "tmedia-2")
LOAD_PORTS = {"main": [(5060, 6000, 8889), (5062, 6100, 8890), (5074, 6200, 8893), (5076, 6300, 8894),
                      (5078, 7000, 8897), (5080, 7100, 8898)],
              "heal": [(5064, 6600, 8891), (5066, 6700, 8892), (5082, 6800, 8895), (5084, 6900, 8896)]}
# The load through the heal runs until the system is healthy (HEAL_HEALTHY_S at most)
# and has answered calls placed during HEAL_TAIL_S after that; HEAL_MAX_S of calls is
# what SIPp is given, more than it ever places.
HEAL_HOLD_S, HEAL_TAIL_S, HEAL_HEALTHY_S, HEAL_MAX_S = 2.0, 1.0, 120.0, 200.0
UAC_SIGNALLING_XML = SCENARIO_DIR / "uac_signalling.xml"


def established_now(loads) -> int:
    return sum(1 for ld in loads for c in ld.calls()
               if c.answer_t is not None and c.bye_sent_t is None)


class Loads:
    """The SIPp callers of one load: each active unit gets its share of `rate`, of which
    `media_rate` calls/s carry RTP (uac.xml) and the rest are signalling only."""

    def __init__(self, tb: Testbed, name: str, ports, rate: float, hold_s: float,
                 duration_s: float, media_rate: float | None = None, isup_rate: float = 0.0):
        ex = tb.sipp_executor("sipp-uac")
        media = rate if media_rate is None else media_rate
        # isup: calls to each unit's own ISUP trunk group (isup_load.py), signalling only
        shares = [("media", media, UAC_XML), ("signalling", rate - media, UAC_SIGNALLING_XML),
                  ("isup", isup_rate, isup_load.UAC_ISUP_XML)]
        self.agents: list[tuple[str, str, SippLoad]] = []
        ports = iter(ports)
        for kind, share, scenario in shares:
            if share <= 0:
                continue
            for unit in LOAD_UNITS:
                port, mport, cport = next(ports)
                self.agents.append((unit, kind, SippLoad(
                    ex, f"{tb.ip(unit, 'voip')}:5060", tb.ip("sipp-uac", "voip"),
                    rate=share / len(LOAD_UNITS), hold_s=hold_s, duration_s=duration_s,
                    name=f"{name}-{unit}" + {"media": "", "signalling": "-sig"}.get(kind, f"-{kind}"),
                    port=port, media_port=mport, control_port=cport, recv_timeout_s=RECV_TIMEOUT_S,
                    scenario=scenario, **({"service": isup_load.ISUP_PREFIX[unit]} if kind == "isup" else {}))))

    @property
    def sipps(self) -> list[SippLoad]:
        return [ld for _, _, ld in self.agents]

    @property
    def ncalls(self) -> int:
        return sum(ld.ncalls for ld in self.sipps)

    def __enter__(self):
        # side by side: each start is a few `docker exec`s until SIPp has bound its port
        try:
            each(self.sipps, lambda ld: ld.start())
        except BaseException:
            for ld in self.sipps:
                if ld.proc is not None:
                    ld.stop(grace_s=0)
            raise
        return self

    def __exit__(self, *exc):
        for ld in self.sipps:
            ld.__exit__(*exc)

    def wait(self) -> bool:
        return all([ld.wait() for ld in self.sipps])

    def calls(self, far_end=None) -> tuple[list[CallRecord], dict[str, str]]:
        """Every call, and the unit each one went through."""
        calls, unit_of = [], {}
        for unit, _, ld in self.agents:
            for c in ld.calls(far_end=far_end):
                calls.append(c)
                unit_of[c.call_id] = unit
        return calls, unit_of

    def note_strays(self, history) -> None:
        """Put on the timeline what reached a caller for calls it never placed (see
        sipp.build_calls): not judged (a caller before it on the port may have left a
        call open), but shown."""
        for unit, _, ld in self.agents:
            if ld.strays:
                cids = sorted({ln.call_id for ln in ld.strays})
                history.event("note", text=f"{ld.name}: {len(ld.strays)} messages of {len(cids)} "
                                           f"calls it never placed (first: {cids[0]}: "
                                           f"{ld.strays[0].first_line})")

    def isup_ids(self) -> set[str]:
        """The Call-IDs of the calls to an ISUP trunk group."""
        return {c.call_id for _, kind, ld in self.agents if kind == "isup" for c in ld.calls()}

    def media_ids(self) -> set[str]:
        """The Call-IDs of the calls that carried RTP (the media sample)."""
        return {c.call_id for _, kind, ld in self.agents if kind == "media" for c in ld.calls()}


def _stop_far_end(uas: SippUas, loads: list[Loads], history: History, isup: bool) -> None:
    """Stop the far end once the last BYEs have reached it. Its soft quit ends only when
    no call is open, and a call lost with its unit never gets its BYE: waiting out the
    grace for those cost 8 s in every unit operation. So the far end is stopped once
    every call whose BYE the unit answered has that BYE at the far end too (what is
    still missing at the deadline is judged as such). The ISUP far end's calls reach it
    as calls of their own, not joined to a caller here: with those, the grace stays.
    `loads` are every load whose calls went to this far end (the main one, and the
    heal's when it overlapped the main load's hold)."""
    if isup:
        uas.stop(grace_s=RECV_TIMEOUT_S)
        return

    def missing() -> list[str]:
        return [c.call_id for ld in loads for c in ld.calls(far_end=uas)[0]
                if c.bye_ok_t is not None and not c.far_bye]
    try:
        wait_for(lambda: not missing(), RECV_TIMEOUT_S, "the last BYEs at the far end",
                 interval=0.25)
    except TestbedError as exc:
        history.event("note", text=f"far end: {exc}")
    uas.stop(grace_s=1)


def _calls_check(name: str, v: Verdict, extra: list[str], expected: str) -> vd.SubCheck:
    data = {"counts": v.counts, "drop_codes": v.drop_codes, "switchover_s": v.switchover_s}
    problems = [str(x) for x in v.violations] + extra
    if problems:
        return vd.failed(name, "; ".join(problems[:8]) + (f" (+{len(problems) - 8} more)"
                                                          if len(problems) > 8 else ""), **data)
    c = v.counts
    lost = f", {c['lost']} lost on the failed unit" if c.get("lost") else ""
    return vd.ok(name, f"{expected}: {c['established']} established kept, {c['transient']} "
                       f"transient ({c['transient_accepted']} accepted, {c['transient_dropped']} "
                       f"dropped {v.drop_codes or ''}), {c['new']} new accepted{lost}", **data)


def _post_checks(results, what: str) -> vd.SubCheck:
    rows = [{"name": c.name, "status": getattr(c, "status", "ok" if c.ok else "failed"),
             "detail": c.detail, "duration_s": c.duration} for c in results]
    bad = [r for r in rows if r["status"] == "failed"]
    na = [r for r in rows if r["status"] == "n/a"]
    if not rows:
        return vd.unknown(what, "no check ran", checks=rows)
    if bad:
        return vd.failed(what, "; ".join(f"{r['name']}: {r['detail']}" for r in bad), checks=rows)
    return vd.ok(what, f"{len(rows) - len(na)} ok" + (f", {len(na)} n/a: " + "; ".join(
        f"{r['name']} ({r['detail']})" for r in na) if na else ""), checks=rows)


def run_operation(tb: Testbed, faults: FaultSet, op, out: Path) -> vd.OperationVerdict:
    """Run `op` and return its composed verdict; result.json is written exactly once, at
    the end, also when the run raised (status `error`)."""
    out.mkdir(parents=True, exist_ok=True)
    verdict = vd.OperationVerdict(op.id)
    result = {"operation": op.id, "seed": op.seed, "fault": op.fault,
              "expected_transient": op.transient, "expected_switchover": op.switchover,
              "t_begin": time.time()}
    history = History(out / "history.jsonl")
    watcher = RoleWatcher(tb, history)
    try:
        _run(tb, faults, op, out, history, verdict, result, watcher)
    except BaseException as exc:
        verdict.error = f"{type(exc).__name__}: {exc}"
        history.event("note", text=f"operation raised: {verdict.error}")
        raise
    finally:
        watcher.stop()        # idempotent; never left sampling after a raise
        result["verdict"] = verdict.to_dict()
        result["status"] = verdict.status
        result["summary"] = verdict.summary()
        (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
        if faults.history is history:
            faults.history = None     # a fault still in place is healed after this
        history.close()
        log(verdict.summary())
    return verdict


def _run(tb, faults, op, out, history, verdict, result, watcher):
    phases = Phases(result)
    master, slave = tb.master(), tb.slave()
    result.update(master=master, slave=slave, variant=tb.variant or "default")
    history.event("note", text=f"operation {op.id}: {op.seed}", master=master, slave=slave)
    prepare_fault(tb, op.fault, master, slave)   # e.g. the database main back on the master
    if op.ss7:      # the active ISUP where the operation wants it, the routes to the trunk groups
        isup_load.prepare(tb, op.ss7["isup_active"], history)
    db_before = db_servers(tb) if _db_apart(tb, op) else None
    unit = op.unit.target if op.unit else None
    before = unit_ops.before_fault(tb, unit) if unit else None
    uas = SippUas(tb.sipp_executor("sipp-uas"),
                  tb.ip("sipp-uas", "voip"), name=f"{op.id}-uas")
    warmup_s = op.load.warmup_established / op.load.rate
    # the load's length: the warm-up, the window after the fault, and the slack between
    # the planned and the real moment of the fault (SIPp's start, calls answered late,
    # a fault that reads the unit first): up to 5.3 s in CI (unit-bond-port-silent),
    # which with 3 s of slack left the window short of calls
    load_s = warmup_s + WARMUP_SLACK_S + op.load.after_s
    isup_rate = op.load.isup_rate if op.ss7 else 0.0
    load = Loads(tb, f"{op.id}-uac", LOAD_PORTS["main"], op.load.rate, op.load.hold_s,
                 load_s, media_rate=op.load.media_rate, isup_rate=isup_rate)
    # the far end's ISUP calls (answered by sipp-uas through the units' interworking)
    far = isup_load.FarEnd(tb, f"{op.id}-isup", "--mode", "both", "--rate", f"{isup_rate:g}",
                           "--hold", f"{op.load.hold_s:g}", "--duration", f"{load_s:g}",
                           "--drain", "15", "--hunt", "random", *isup_load.FAR_TIMERS) if op.ss7 else None
    # the seed's post-switchover checks need calls established before the fault
    prepared = post_checks.prepare(tb) if op.switchover else None
    # each call's media around the fault: RTP from both units, captured at the far end
    capture = MediaCapture(tb, "sipp-uas", units_media_ips(tb, LOAD_UNITS), f"{op.id}-media")
    faults.history = history
    phases.mark("prepare")
    extra_effects: dict = {}
    watcher.start()
    checks, config_checks = [], []
    # Where it is safe, the heal overlaps the hold of the main load's last calls (they
    # then ride through it too, and the hold is not waited out first). Not for a bond
    # port or a voice path, whose effect is judged from the captures of the new port
    # and of the media, which the heal would mix into, nor with SS7, whose far end's
    # calls and MTP3 counts are judged up to their end: there the heal comes once all
    # of that is judged, as a step of its own.
    heal_early = not op.ss7 and (not op.unit or op.fault["kind"] in HEAL_EARLY_UNIT_KINDS)
    heal = effect = None
    try:
        with uas, capture, _garp_capture(tb, op, before, extra_effects):
            if far is not None:
                far.start()
                isup_load.wait_links(tb, far)
            with load:
                history.event("note", text=f"load {op.load.rate}/s over {', '.join(LOAD_UNITS)}, "
                                           f"hold {op.load.hold_s}s, {load.ncalls} calls"
                                           + (f"; ISUP {isup_rate:g}/s each way" if far else ""))
                wait_for(lambda: established_now(load.sipps) >= op.load.warmup_established,
                         warmup_s + op.load.hold_s + 10,
                         f"{op.load.warmup_established} established calls", interval=0.25)
                fault = make_fault(tb, op, master, slave)
                # (settled after the calls through the heal: fault.settle_in_heal stays off)
                established = established_now(load.sipps)
                phases.mark("warm-up")
                t_fault = faults.inject(fault)
                result.update(t_fault=t_fault, fault_name=fault.name, fault_target=fault.target,
                              established_at_fault=established)
                history.event("note", text=f"{established} calls established at the fault")
                if op.switchover:
                    wait_for(lambda: watcher.first_active(slave, t_fault), op.max_switchover_s + 10,
                             f"{slave} to become active")
                # The window after the fault is the load's: then the callers stop placing
                # calls (SIPp's soft quit; the calls up go on to their end). The calls
                # SIPp was given beyond it (WARMUP_SLACK_S) are a margin for a late fault,
                # not a wait.
                wait_for(lambda: time.time() >= t_fault + op.load.after_s or
                         not any(ld.running for ld in load.sipps),
                         op.load.after_s + 5, "the window after the fault", interval=0.1)
                for ld in load.sipps:
                    ld.quit()
                if far is not None:
                    far.quit()
                # The checks run while the last calls are held: every call has been
                # placed, the window after the fault is over, and what the checks
                # change (a reload, a stack disabled, a route) must not touch a call
                # that is up; if it did, those calls' verdict says so.
                phases.mark("fault to the last call placed")
                if prepared:
                    checks = post_checks.run_all(tb, prepared)
                    phases.mark("post-switchover checks")
                prepared = None
                if op.fault["kind"].startswith("mysql_"):
                    config_checks = post_checks.run_config_checks(tb)
                    phases.mark("configuration checks")
                if heal_early:     # its calls go to this far end (the routes' sipp-uas:5060)
                    if unit:       # the fault's effect on the unit, read while it is in place
                        effect = unit_ops.wait_effect(tb, op.fault["kind"], unit, before, t_fault,
                                                      extra_effects, UNIT_EFFECT_S)
                    heal = _heal_under_load(tb, faults, op, history)
                    phases.mark("heal under load")
                finished = load.wait()
                history.event("note", text=f"load finished by itself: {finished}")
                phases.mark("load end")
                created = [ld.created() for ld in load.sipps]     # each written as it exits
                placed = None if None in created else sum(created)
            _stop_far_end(uas, [load] + ([heal.load] if heal else []), history, isup=far is not None)
        phases.mark("far end and captures stopped")
        calls, unit_of = load.calls(far_end=uas)
        if far is not None:     # the ISUP legs, judged with the rest (isup_load.py)
            far_summary, trace = far.result(timeout=load_s + op.load.hold_s + 60)
            isup_load.join_sip_isup([c for c in calls if c.call_id in load.isup_ids()], trace)
            isup_calls, isup_units = isup_load.isup_records(trace, uas.calls())
            calls += isup_calls
            unit_of.update(isup_units)
        load.note_strays(history)
        for c in calls:
            history.call(c)
        if op.fault["kind"] in ("kill_process", "deadlock"):
            verdict.add(restarted_check(tb, fault.host, fault.app, fault.pid, t_fault))
        phases.mark("calls read")
    finally:
        if prepared is not None:          # the fault path failed: close what prepare opened
            prepared.finish(None)
        if far is not None:               # (ended already, unless the run failed)
            far.stop()
    lost = unit_ops.lost_ok(calls, unit_of, unit, t_fault, op.unit.calls) if unit else frozenset()
    v = check(calls, t_fault, master, op.transient, switchover_expected=op.switchover,
              max_switchover_s=op.max_switchover_s, min_transient=1 if op.switchover else 0,
              lost_ok=lost)
    # (the far end's ISUP calls are counted by the SS7 check)
    extra = load_problems([c for c in calls if not c.call_id.startswith("isup-")], placed,
                          t_fault, warmup_established=op.load.warmup_established,
                          established=established, after_s=op.load.after_s,
                          rate=op.load.rate + isup_rate)
    verdict.add(_calls_check("calls", v, extra,
                             f"transient expected {'accepted' if op.transient == 'accept' else 'dropped'}"))
    verdict.add(_switchover_check(v, op))
    if far is not None:
        verdict.add(isup_load.ss7_check(tb, far_summary, calls, load.isup_ids(), v.classes,
                                        lost, op.ss7["isup_active"], t_fault, result,
                                        link_cut=(fault.serving if op.fault["kind"] == "ss7_link_cut"
                                                  else None)))
    result.update(classes=v.classes, switchover_s=v.switchover_s, unit_of=unit_of,
                  lost=sorted(lost))
    streams = capture.streams()
    # media is judged on the calls that carried RTP (the sample), all of them
    media_ids = load.media_ids()
    result["media_sample"] = len(media_ids)
    verdict.add(_media_check(tb, op, streams, [c for c in calls if c.call_id in media_ids],
                             unit_of, lost, t_fault, extra_effects))
    if unit:
        verdict.add(unit_ops.recovery_check(calls, unit_of, unit, t_fault, op.unit.calls,
                                            op.max_switchover_s))
        verdict.add(effect or unit_ops.effect_check(tb, op.fault["kind"], unit, before, t_fault,
                                                    extra_effects))
    if op.switchover:
        verdict.add(_post_checks(checks, "post-switchover checks"))
    else:
        verdict.add(vd.na("post-switchover checks", "no switchover in this operation"))
    if op.fault["kind"].startswith("mysql_"):
        # calls never touch the database: only configuration work proves the switch to the
        # backup ("Toolpack will automatically switch to using the backup DB")
        verdict.add(_post_checks(config_checks, "configuration checks with the database server down"))
    verdict.add(oam_auth_check(tb, slave if op.switchover else master))
    if db_before is not None:
        verdict.add(db_untouched_check(db_before, db_servers(tb)))
    phases.mark("judged (calls, media, OAM)")
    # the heal, under load: calls through it are judged like the rest
    if heal is not None:
        verdict.add(heal.judge(uas, history))
    else:
        # a far end of its own for the heal's calls: the main load's has stopped
        heal_uas = SippUas(tb.sipp_executor("sipp-uas"), tb.ip("sipp-uas", "voip"),
                           name=f"{op.id}-heal-uas")
        with heal_uas:
            heal = _heal_under_load(tb, faults, op, history)
            _stop_far_end(heal_uas, [heal.load], history, isup=False)
        verdict.add(heal.judge(heal_uas, history))
        phases.mark("heal under load")
    watcher.stop()
    # the OAM samples are not judged: the two hosts' answers to one sample are not
    # simultaneous (under load one takes a few hundred ms), so they can neither prove nor
    # rule out two active hosts; the hosts' own logs below do. They give the OAM's view of
    # the switchover time, and the harness waits on them.
    became = watcher.first_active(slave, t_fault)
    result["role_switch_s"] = (became - t_fault) if became and op.switchover else None
    try:
        tb.wait_healthy(120, quiet=True)
        if unit:
            settle(tb)      # the units back on their default boards for the next operation
        verdict.add(vd.ok("healthy after the heal", "every node back, roles, leases and "
                                                     "replication as before"))
    except TestbedError as exc:
        verdict.add(vd.failed("healthy after the heal", str(exc)))
    phases.mark("healthy again")
    verdict.add(_logs_check(tb, op, result["t_begin"]))
    # roles seen without the network: the hosts' and the units' own logs, and SIP
    views = roles.collect(tb, since=result["t_begin"])
    sip = [c for c in calls + heal.calls if not c.call_id.startswith("isup-")]   # ISUP legs name no gateway
    for c in roles.judge(views, sip, t_fault, v.t_sw, master,
                         slave if op.switchover else master, op.switchover, views.read_at):
        verdict.add(c)
    phases.mark("logs and roles judged")


GRACEFUL = ("kill_process", "deadlock", "service_quit", "host_shutdown")   # the old master hands over
DB_KINDS = ("mysql_kill", "mysql_shutdown")     # a database server lost
# ... and a Toolpack host lost, which takes its own server with it unless the servers are
# on hosts of their own (the external-db variant)
HOST_KINDS = ("host_power_off", "host_shutdown", "network_cut")


def _db_apart(tb, op) -> bool:
    """A Toolpack host's loss where the database servers are on hosts of their own."""
    return op.fault["kind"] in HOST_KINDS and not set(tb.db_hosts) & set(HOSTS)


def db_servers(tb) -> dict:
    """Each database host's mariadbd pid and role (its init's `ctl mysql status`, through
    `docker exec`: a cut of a Toolpack host does not hide it)."""
    from .faults import ctl
    out = {}
    for h in tb.db_hosts:
        try:
            data = ctl(tb, h, "mysql", "status")["data"]
            out[h] = {"pid": data.get("pid"), "role": (data.get("agent") or {}).get("role")}
        except TestbedError as exc:
            out[h] = {"error": str(exc)}
    return out


def db_untouched_check(before: dict, after: dict) -> vd.SubCheck:
    """The seed's two external database hosts: a Toolpack host's loss takes no database
    with it. Proven by the servers' processes: the same mariadbd, in the same role, on
    each database host before the fault and after the load (not by the OAM's view)."""
    name = "database servers untouched"
    changed = [f"{h}: {before.get(h)} -> {after.get(h)}" for h in sorted(set(before) | set(after))
               if before.get(h) != after.get(h) or "error" in (after.get(h) or {})]
    if changed:
        return vd.failed(name, "; ".join(changed), before=before, after=after)
    return vd.ok(name, "; ".join(f"{h}: mariadbd {v['pid']} {v['role']} throughout"
                                 for h, v in sorted(after.items())), before=before, after=after)


def db_may_go(tb, kind: str) -> bool:
    """The main or the backup database may be lost in this operation."""
    return kind in DB_KINDS or (kind in HOST_KINDS and set(tb.db_hosts) <= set(HOSTS))


def _logs_check(tb, op, since: float) -> vd.SubCheck:
    """The seed's "verify that there are no errors": no traceback, ERROR or CRITICAL in
    any host's or unit's log since the operation began, no deadlock kill or unit reboot
    the fault does not cause, and its expected events there."""
    kind = op.fault["kind"]
    expect = list(logscan.expected(kind, app=op.fault.get("app", "")))
    if op.switchover:
        expect += logscan.switchover_events(kind in GRACEFUL)
    allow = logscan.MAIN_DB_LOST + logscan.BACKUP_DB_LOST if db_may_go(tb, kind) else ()
    return logscan.scan(tb, since, expect=expect, allow=allow, forbid=logscan.unexpected(kind, fault_class(kind).unit_level))


class _garp_capture:
    """For a bond port fault: gratuitous ARP captured on the port the bond moves to."""

    def __init__(self, tb, op, before, out: dict):
        self.cap = None
        if op.fault["kind"] in ("bond_port_down", "bond_port_silent") and before:
            bond = (before["status"].get(before["board"], {}).get("status") or {}).get("bond") or {}
            new = "vp2" if bond.get("active_port") == "vp1" else "vp1"
            self.cap = GarpCapture(tb, before["board"], new, name=op.id)
            self.bond, self.out = bond, out
            out["new_port"] = new

    def __enter__(self):
        if self.cap:
            self.cap.__enter__()
        return self

    def __exit__(self, *exc):
        if self.cap:
            self.cap.__exit__(*exc)
            self.out["garp_missing"] = missing_announcements(
                self.cap.announced(), self.bond.get("addresses", []), self.bond.get("mac", ""))


def _media_check(tb, op, streams, calls, unit_of, lost, t_fault, effects) -> vd.SubCheck:
    """Media of the calls kept across the fault; for a lost voice path, the calls on it
    lose theirs (not moved, as the seed says): only the other unit's calls and the
    surviving path are judged, and where the unit's new calls' media went is recorded."""
    bound = gap_bound_ms(op.fault["kind"])
    if op.fault["kind"] != "voice_path_cut":
        return judge_media(streams, t_fault, kept_across(calls, t_fault, lost), bound)
    unit, path = op.unit.target, op.fault.get("path") or 101
    lost_ip = tb.ip(unit, f"vlan{path}")
    other_ip = tb.ip(unit, f"vlan{203 - path}")
    others = [c for c in calls if unit_of.get(c.call_id) != unit]
    # new calls through the unit, set up once the probes had time to see the path down
    settled = t_fault + 2.5
    # (the lost path's media never reaches the far end: what proves where new calls went
    # is that every one of them has a stream on the surviving path)
    effects["new_calls"] = sum(1 for c in calls if unit_of.get(c.call_id) == unit
                               and c.answer_t is not None and c.answer_t > settled
                               and c.outcome == "completed" and c.bye_sent_t
                               and c.bye_sent_t - c.answer_t > MARGIN_S)
    effects["new_on_lost"] = sum(1 for st in streams if st.key[0] == lost_ip and st.times[0] > settled)
    effects["new_on_other"] = sum(1 for st in streams if st.key[0] == other_ip and st.times[0] > settled)
    return judge_media([st for st in streams if st.key[0] != lost_ip], t_fault,
                       kept_across(others, t_fault, lost), bound)


def _switchover_check(v: Verdict, op) -> vd.SubCheck:
    sw = v.switchover_s
    data = {"switchover_s": sw, "max_switchover_s": op.max_switchover_s}
    if op.switchover:
        if sw is None:
            return vd.failed("switchover", "no call set up after the fault was answered by the "
                                           "new master", **data)
        if sw > op.max_switchover_s:
            return vd.failed("switchover", f"{sw:.3f} s > {op.max_switchover_s} s", **data)
        return vd.ok("switchover", f"{sw:.3f} s <= {op.max_switchover_s} s (fault to the first new "
                                   f"call answered by the new master)", **data)
    if sw is None:
        return vd.failed("switchover", "no call set up after the fault was answered", **data)
    return vd.ok("switchover", f"none expected; first call after the fault answered "
                               f"{sw:.3f} s after it", **data)


class HealLoad:
    """The calls placed through the heal (see _heal_under_load), judged once their far
    end has stopped (its trace then has every BYE)."""

    def __init__(self, load: "Loads", t_heal: float, healed: float, t_quit: float,
                 healthy_s: float | None, rate: float):
        self.load, self.t_heal, self.healed, self.t_quit = load, t_heal, healed, t_quit
        self.healthy_s, self.rate = healthy_s, rate
        self.calls: list = []          # read by judge()

    def judge(self, uas: SippUas, history) -> vd.SubCheck:
        load = self.load
        self.calls = calls = load.calls(far_end=uas)[0]
        load.note_strays(history)
        for c in calls:
            history.call(c)
        v = check(calls, self.t_heal, None, "accept", switchover_expected=False, max_switchover_s=60)
        probs = [str(x) for x in v.violations if x.call_id] + open_load_problems(
            calls, [ld.created() for ld in load.sipps], self.t_heal, self.t_quit, self.rate)
        data = {"heal_s": round(self.healed - self.t_heal, 2), "healthy_s": self.healthy_s,
                "calls": len(calls)}
        if probs:
            return vd.failed("heal", f"{len(probs)} calls through the heal not as expected: "
                                     + "; ".join(probs[:5]), **data)
        return vd.ok("heal", f"healed in {self.healed - self.t_heal:.1f} s, healthy {self.healthy_s} "
                             f"s after it; {len(calls)} calls through it, all accepted and ended "
                             f"normally", **data)


def _heal_under_load(tb, faults, op, history) -> HealLoad:
    """Heal the fault while a second load runs, and keep it running until the system is
    healthy again and has answered a few calls placed after that: every call through the
    heal and the returning node's rejoin must be accepted and end normally. The load's
    length is that condition, not a fixed time (a kill has nothing to heal; a powered-off
    host boots and clones its database first). Its calls go to sipp-uas:5060, the routes'
    far end, where the caller runs a SippUas until they have ended."""
    load = Loads(tb, f"{op.id}-heal", LOAD_PORTS["heal"], op.load.rate,
                 min(op.load.hold_s, HEAL_HOLD_S), HEAL_MAX_S, media_rate=op.load.media_rate)
    healthy_s = None
    with load:
        wait_for(lambda: established_now(load.sipps) >= 2, 10,
                 "calls established before the heal")
        t_heal = time.time()
        faults.heal()                 # writes the heal events into the history
        healed = time.time()
        try:
            tb.wait_healthy(HEAL_HEALTHY_S, quiet=True)
            t_ok = time.time()
            healthy_s = round(t_ok - t_heal, 2)
            tail = max(3, round(op.load.rate * HEAL_TAIL_S))
            wait_for(lambda: _answered_after(load, t_ok) >= tail, HEAL_TAIL_S + 10,
                     f"{tail} calls placed after the heal answered", interval=0.25)
        except TestbedError as exc:
            history.event("note", text=f"heal load: {exc}")   # judged below and after
        t_quit = time.time()
        for ld in load.sipps:
            ld.quit()
        load.wait()
    return HealLoad(load, t_heal, healed, t_quit, healthy_s, op.load.rate)


def _answered_after(load: Loads, t: float) -> int:
    return sum(1 for ld in load.sipps for c in ld.calls()
               if c.invite_t is not None and c.invite_t >= t and c.answer_t is not None)
