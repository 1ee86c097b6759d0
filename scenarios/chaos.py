"""The chaos run: faults from the registry at random moments under a steady load, single
(the matrix's operations) and double (scenarios/chaos.yaml), as one history.

    python -m scenarios.chaos --seed 7 --duration 180       (make chaos SEED=7 DURATION=180)
    python -m scenarios.chaos --seed 7 --steps 3            replay the first 3 steps of seed 7

1. `plan(seed)`: the steps (which fault, its targets, the quiet time before it and how
   long it stays in), from a generator seeded with `seed` alone, so a seed always gives
   the same sequence. A run executes the plan's steps until its duration is spent (or
   exactly `--steps` of them); what the system does within them differs from run to run.
2. Under the whole run: one SIPp load through both units (harness.scenario.Loads), an
   OAM writer adding an account every `write_period_s` through the active host's API,
   and the history (harness/history.py) with every fault's inject and heal.
3. Each step: targets resolved from the live roles, the faults injected at their
   offsets, held, healed; then the testbed must be healthy (every unit held by the active
   host and served, one active host, replication running) within `heal_deadline_s`, or
   the run stops there with a violation.
4. The judge (harness/chaos_check.py): every call against the windows it crossed, each
   failed unit's recovery, never two active hosts nor two holders of a unit's lease (the
   hosts' and the units' own logs, harness/roles.py), every acknowledged write present
   on the main database at the end, the load placing calls all along.
5. A failed run is shrunk by replay: the shortest prefix of its steps that still fails
   (binary search over prefixes ending at the first failing step, within a time budget),
   printed with the command that replays it.

Everything is in <out>/chaos.json, <out>/history.jsonl and the timeline <out>/chaos.png."""
from __future__ import annotations

import argparse
import json
import random
import re
import secrets
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import pymysql
import yaml

from harness import chaos_check, logscan, roles, unit_ops
from harness.faults import FaultSet, Timers, fault_class, from_spec, heal_all, unit_moved_s, validate
from harness.faults._units import settle
from harness.faults import prepare as prepare_fault
from harness.history import History
from harness.oam import Oam, OamError
from harness.scenario import LOAD_PORTS, RECV_TIMEOUT_S, Loads, established_now
from harness.sipp import SippUas
from harness.testbed import HOSTS, ROOT, Testbed, TestbedError, log
from harness.util import wait_for
from scenarios.matrix import load as load_matrix

CHAOS = Path(__file__).with_name("chaos.yaml")
NOMINAL_STEP_S = 35.0      # a step with its heal, for sizing a plan (the run measures)
MAX_GAP_S = 2.0            # longest time the load may place no call (20/s: 40 missing)
WRITER_PREFIX = "chaos"


class ChaosError(ValueError):
    pass


# ---- the definitions and the plan -----------------------------------------------------
@dataclass(frozen=True)
class Action:
    at_s: float
    fault: dict | None = None     # a registry fault, matrix form
    reload: bool = False          # a configuration reload through the OAM API


@dataclass(frozen=True)
class Step:
    name: str
    actions: tuple[Action, ...]
    gap_s: float
    hold_s: float
    transient: str
    switchover: bool
    unit: str | None = None
    unit_calls: str = "kept"
    bounds: tuple[float, ...] = ()      # per fault action: max_switchover_s
    unit_bound_s: float | None = None   # the failed unit answering again

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Config:
    rate: float
    media_rate: float
    hold_s: float
    write_period_s: float
    gap_s: tuple[float, float]
    step_hold_s: tuple[float, float]
    double_share: float
    heal_deadline_s: float
    singles: tuple[Step, ...]           # gap and hold 0: drawn per step
    doubles: tuple[Step, ...]


def _range(v, where: str) -> tuple[float, float]:
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float))
                                                        and not isinstance(x, bool) for x in v)
            and 0 <= v[0] <= v[1]):
        raise ChaosError(f"{where}: must be [low, high] seconds, 0 <= low <= high, not {v!r}")
    return float(v[0]), float(v[1])


def _num(d: dict, key: str, where: str, lo: float = 0.0) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < lo:
        raise ChaosError(f"{where}.{key}: must be a number >= {lo:g}, not {v!r}")
    return float(v)


def _double(entry, i: int, timers: Timers) -> Step:
    where = f"chaos.yaml: doubles[{i}]"
    if not isinstance(entry, dict):
        raise ChaosError(f"{where}: expected a mapping")
    unknown = sorted(set(entry) - {"id", "expect", "actions", "switchover", "transient", "unit"})
    if unknown:
        raise ChaosError(f"{where}: {unknown[0]}: unknown key")
    if not isinstance(entry.get("id"), str):
        raise ChaosError(f"{where}.id: a string is required")
    where = f"chaos.yaml: double {entry['id']!r}"
    if entry.get("transient") not in ("accept", "drop"):
        raise ChaosError(f"{where}.transient: accept or drop, not {entry.get('transient')!r}")
    if not isinstance(entry.get("switchover"), bool):
        raise ChaosError(f"{where}.switchover: true or false, not {entry.get('switchover')!r}")
    acts = entry.get("actions")
    if not isinstance(acts, list) or not acts:
        raise ChaosError(f"{where}.actions: a non-empty list")
    actions, bounds, unit_level = [], [], False
    for j, a in enumerate(acts):
        aw = f"{where}.actions[{j}]"
        if not isinstance(a, dict) or set(a) - {"at_s", "fault", "reload"} \
                or ("fault" in a) == bool(a.get("reload")):
            raise ChaosError(f"{aw}: a mapping with at_s and either fault or reload: true")
        at = _num(a, "at_s", aw)
        if a.get("fault") is not None:
            try:
                cls, _ = validate(a["fault"])
            except ValueError as exc:
                raise ChaosError(f"{aw}: {exc}") from None
            unit_level |= cls.unit_level
            bounds.append(cls.max_switchover_s(timers))
            actions.append(Action(at, dict(a["fault"])))
        else:
            actions.append(Action(at, reload=True))
    if [a.at_s for a in actions] != sorted(a.at_s for a in actions):
        raise ChaosError(f"{where}.actions: at_s must not decrease")
    unit = entry.get("unit")
    if unit_level != (unit is not None):
        raise ChaosError(f"{where}.unit: {{target, calls}} is required exactly when a fault "
                         f"is unit-level")
    if unit is not None and (not isinstance(unit, dict) or unit.get("calls") not in ("lost", "kept")
                             or not isinstance(unit.get("target"), str)):
        raise ChaosError(f"{where}.unit: {{target: <unit>, calls: lost|kept}}, not {unit!r}")
    # a double's faults are judged by the widest bound among them; the failed unit must
    # answer again within a host switchover and a unit move
    bound = max(bounds) if bounds else fault_class("mysql_kill").max_switchover_s(timers)
    return Step(entry["id"], tuple(actions), 0.0, 0.0, entry["transient"], entry["switchover"],
                unit and unit["target"], unit["calls"] if unit else "kept",
                tuple(bound for a in actions if a.fault),
                max(bounds) + unit_moved_s(timers) if unit else None)


def load_config(path: Path = CHAOS, timers: Timers | None = None) -> Config:
    """chaos.yaml and the matrix's operations; a malformed file is a clear error naming the
    entry and the field."""
    import os
    timers = timers or Timers.from_env(os.environ)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ChaosError(f"{path.name}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"run", "doubles"}:
        raise ChaosError(f"{path.name}: a mapping with exactly 'run' and 'doubles'")
    run = doc["run"]
    if not isinstance(run, dict):
        raise ChaosError("chaos.yaml: run: a mapping")
    unknown = sorted(set(run) - {"load", "write_period_s", "gap_s", "hold_s", "double_share",
                                 "heal_deadline_s"})
    if unknown:
        raise ChaosError(f"chaos.yaml: run.{unknown[0]}: unknown key")
    ld = run.get("load")
    if not isinstance(ld, dict) or set(ld) - {"rate", "media_rate", "hold_s"}:
        raise ChaosError("chaos.yaml: run.load: {rate, media_rate, hold_s}")
    rate, media = _num(ld, "rate", "run.load", 0.1), _num(ld, "media_rate", "run.load")
    if media > rate:
        raise ChaosError("chaos.yaml: run.load.media_rate: not more than rate")
    share = _num(run, "double_share", "run")
    if share > 1:
        raise ChaosError("chaos.yaml: run.double_share: between 0 and 1")
    gap, hold = _range(run.get("gap_s"), "chaos.yaml: run.gap_s"), \
        _range(run.get("hold_s"), "chaos.yaml: run.hold_s")
    singles = tuple(Step(op.id, (Action(0.0, dict(op.fault)),), 0.0, 0.0, op.transient,
                         op.switchover, op.unit.target if op.unit else None,
                         op.unit.calls if op.unit else "kept", (op.max_switchover_s,),
                         op.max_switchover_s if op.unit else None)
                    for op in load_matrix(timers=timers, variant="default"))
    doubles = doc["doubles"]
    if not isinstance(doubles, list) or not doubles:
        raise ChaosError("chaos.yaml: doubles: a non-empty list")
    return Config(rate, media, _num(ld, "hold_s", "run.load", 0.5),
                  _num(run, "write_period_s", "run", 0.05),
                  gap, hold, share,
                  _num(run, "heal_deadline_s", "run", 1), singles,
                  tuple(_double(e, i, timers) for i, e in enumerate(doubles)))


def plan(cfg: Config, seed: int, n: int) -> list[Step]:
    """The first `n` steps of seed `seed`: the seed alone decides them (a prefix of a
    longer plan is the shorter plan). Every double fault comes once in each run of
    len(doubles) / double_share steps or so; the singles are drawn from the matrix."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pool = cfg.doubles if rng.random() < cfg.double_share else cfg.singles
        base = rng.choice(pool)
        gap = round(rng.uniform(*cfg.gap_s), 2)
        hold = round(rng.uniform(*cfg.step_hold_s), 2)
        out.append(Step(**{**base.__dict__, "gap_s": gap, "hold_s": hold}))
    return out


# ---- the OAM writer ------------------------------------------------------------------
class Writer(threading.Thread):
    """Adds one account every `period` through the OAM API of the host it believes active
    (the other one when that fails); records every write and whether it was acknowledged
    (201). Each name is new, so a write's presence at the end is unambiguous."""

    def __init__(self, tb: Testbed, tag: str, period: float):
        super().__init__(daemon=True, name="chaos-writer")
        self.tb, self.tag, self.period = tb, tag, period
        self.stop_flag = threading.Event()
        self.writes: list[dict] = []
        self.host = HOSTS[0]

    def run(self):
        i = 0
        while not self.stop_flag.wait(self.period):
            i += 1
            name = f"{WRITER_PREFIX}{self.tag}{i:05d}"
            rec = {"name": name, "t": time.time(), "acked": False, "status": None, "host": None}
            for host in (self.host, *[h for h in HOSTS if h != self.host]):
                try:
                    r = Oam(self.tb, host).request("POST", "/accounts", json={
                        "name": name, "enabled": True, "max_calls": 1}, timeout=3.0)
                except OamError:
                    continue
                rec.update(status=r.status, host=host)
                if r.status == 201:
                    rec["acked"] = True
                    self.host = host
                    break
                if r.status == 409:        # a retried write that had landed: acknowledged
                    rec["acked"] = True
                    break
            self.writes.append(rec)

    def stop(self):
        self.stop_flag.set()
        if self.ident is not None:      # started (a run that failed early never starts it)
            self.join(timeout=10)


def present_names(tb: Testbed, prefix: str) -> tuple[str, set[str]]:
    """The writable main's host and the accounts named `prefix...` on it."""
    db = tb.db_view()
    main = db["main"]
    if main.get("role") != "main":
        raise TestbedError(f"no writable main database: {db}")
    conn = pymysql.connect(host=main["ip"], user="toolpack", password=tb.env["TB_DB_PASSWORD"],
                           database="toolpack", connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM accounts WHERE name LIKE %s", (prefix + "%",))
            return main["ip"], {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def delete_names(tb: Testbed, prefix: str) -> None:
    db = tb.db_view()
    conn = pymysql.connect(host=db["main"]["ip"], user="toolpack",
                           password=tb.env["TB_DB_PASSWORD"], database="toolpack",
                           connect_timeout=3, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM accounts WHERE name LIKE %s", (prefix + "%",))
    finally:
        conn.close()


# ---- one run -------------------------------------------------------------------------
@dataclass
class StepResult:
    step: Step
    t0: float
    master: str
    slave: str
    faults: list[dict] = field(default_factory=list)     # name, target, t
    reloads: list[dict] = field(default_factory=list)    # status, detail, took_s
    t_healed: float | None = None
    t_end: float | None = None
    healthy: str | None = None       # None: healthy; else why not
    error: str | None = None


def _reload(tb: Testbed, host: str, into: list) -> threading.Thread:
    def go():
        t = time.time()
        try:
            r = Oam(tb, host).request("POST", "/configurations/reload", timeout=30.0, timeout_s=15)
            into.append({"status": r.status, "detail": r.detail()[:200], "took_s": time.time() - t})
        except OamError as exc:
            into.append({"status": None, "detail": str(exc)[:200], "took_s": time.time() - t})
    th = threading.Thread(target=go, daemon=True)
    th.start()
    return th


def run_step(tb: Testbed, faults: FaultSet, step: Step, history: History,
             heal_deadline_s: float) -> StepResult:
    time.sleep(step.gap_s)            # the plan's quiet time (a schedule, not a wait)
    master, slave = tb.master(), tb.slave()
    res = StepResult(step, time.time(), master, slave)
    history.event("note", text=f"step {step.name}", master=master, slave=slave,
                  step=step.to_dict())
    try:
        specs = [a.fault for a in step.actions if a.fault]
        for spec in specs:
            prepare_fault(tb, spec, master, slave)
        # every target resolved before the first action (a host powered off at 0 leaves
        # no OAM to ask where a unit is at 0.3 s)
        resolved = [from_spec(tb, a.fault, master, slave) if a.fault else None
                    for a in step.actions]
        t0 = time.time()
        threads = []
        for a, fault in zip(step.actions, resolved):
            time.sleep(max(0.0, t0 + a.at_s - time.time()))
            if fault is None:
                threads.append(_reload(tb, master, res.reloads))
                history.event("note", text=f"step {step.name}: configuration reload on {master}")
                continue
            t = faults.inject(fault)
            res.faults.append({"kind": fault.kind, "name": fault.name, "target": fault.target,
                               "t": t})
        time.sleep(max(0.0, t0 + step.actions[-1].at_s + step.hold_s - time.time()))
        for th in threads:
            th.join(timeout=35)
    except Exception as exc:
        res.error = f"{type(exc).__name__}: {exc}"
        history.event("note", text=f"step {step.name} raised: {res.error}")
    finally:
        try:
            faults.heal()
        except Exception as exc:
            res.error = (res.error + "; " if res.error else "") + f"heal: {exc}"
        res.t_healed = time.time()
    try:
        tb.wait_healthy(heal_deadline_s, quiet=True)
    except TestbedError as exc:
        res.healthy = str(exc)
    res.t_end = time.time()
    history.event("note", text=f"step {step.name} healed in {res.t_healed - res.t0:.1f} s, "
                               f"healthy after {res.t_end - res.t_healed:.1f} s"
                               + (f": NOT HEALTHY {res.healthy}" if res.healthy else ""))
    return res


@dataclass
class RunResult:
    seed: int
    steps: list[StepResult]
    violations: list[str]
    counts: dict
    writes: dict
    switchovers: list[dict]
    out: Path
    t_begin: float
    t_end: float
    events: list[str] = field(default_factory=list)   # logscan.notable_events when failed

    @property
    def ok(self) -> bool:
        return not self.violations

    def first_failing_step(self) -> int | None:
        """Index of the earliest step a violation names (a violation of the whole run,
        e.g. a lost write, names none: then the last step run)."""
        named = [int(m.group(1)) - 1 for v in self.violations
                 if (m := re.match(r"step (\d+) ", v))]
        if named:
            return min(named)
        return len(self.steps) - 1 if self.steps else None


def run(tb: Testbed, cfg: Config, seed: int, out: Path, *, duration_s: float | None = None,
        steps: int | None = None) -> RunResult:
    """Run the plan of `seed`: `steps` steps exactly, or as many as fit in `duration_s`."""
    if (duration_s is None) == (steps is None):
        raise ValueError("give exactly one of duration_s and steps")
    n = steps if steps is not None else max(1, int(duration_s // NOMINAL_STEP_S) * 3 + 3)
    todo = plan(cfg, seed, n)
    out.mkdir(parents=True, exist_ok=True)
    history = History(out / "history.jsonl")
    faults = FaultSet(tb, history)
    tag = secrets.token_hex(3)
    log(f"chaos seed {seed}: " + (f"{steps} steps" if steps else f"{duration_s:.0f} s")
        + f", load {cfg.rate:g}/s, writer tag {tag}")
    tb.wait_healthy(cfg.heal_deadline_s)
    budget = (duration_s if duration_s else n * NOMINAL_STEP_S * 2) + 600
    uas = SippUas(tb.sipp_executor("sipp-uas"),
                  tb.ip("sipp-uas", "voip"), name=f"chaos{seed}-uas")
    load = Loads(tb, f"chaos{seed}-uac", LOAD_PORTS["main"], cfg.rate, cfg.hold_s, budget,
                 media_rate=cfg.media_rate)
    writer = Writer(tb, tag, cfg.write_period_s)
    t_begin = time.time()
    done: list[StepResult] = []
    try:
        with uas:
            with load:
                wait_for(lambda: established_now(load.sipps) >= cfg.rate, 20,
                         "the chaos load established", interval=0.25)
                writer.start()
                t_load = time.time()
                deadline = None if duration_s is None else t_load + duration_s
                for i, step in enumerate(todo):
                    if deadline is not None and time.time() + step.gap_s + 10 > deadline:
                        break
                    log(f"chaos step {i + 1}: {step.name} (gap {step.gap_s} s, hold {step.hold_s} s)")
                    r = run_step(tb, faults, step, history, cfg.heal_deadline_s)
                    done.append(r)
                    _print_step(i, r)
                    if r.healthy or r.error:
                        break              # the next step would judge a broken testbed
                time.sleep(cfg.gap_s[1])   # a quiet tail: calls after the last heal
                t_last = time.time()
                writer.stop()
                for ld in load.sipps:      # no new calls from any caller; then the
                    ld.proc.control(ld.control_port, "q")   # open ones end normally
                for ld in load.sipps:
                    ld.stop(grace_s=cfg.hold_s + 2 * RECV_TIMEOUT_S + 5)
            uas.stop(grace_s=RECV_TIMEOUT_S)
    finally:
        writer.stop()
        faults.heal()
    calls, unit_of = load.calls(far_end=uas)
    for c in calls:
        history.call(c)
    result = judge(tb, cfg, seed, done, calls, unit_of, writer, tag, t_begin, t_load, t_last, out)
    history.event("note", text=f"chaos run judged: {len(result.violations)} violations")
    history.close()
    write_report(result, calls, unit_of)
    return result


def _print_step(i: int, r: StepResult) -> None:
    faults = ", ".join(f["name"] for f in r.faults) or "none"
    state = "healthy" if not r.healthy else f"NOT HEALTHY: {r.healthy}"
    log(f"chaos step {i + 1} {r.step.name}: {faults}; healed in {r.t_healed - r.t0:.1f} s, "
        f"{state}" + (f"; error {r.error}" if r.error else ""))


def label(i: int, r: StepResult) -> str:
    return f"step {i + 1} {r.step.name}"


def windows_of(done: list[StepResult]) -> list[chaos_check.Window]:
    out = []
    for i, r in enumerate(done):
        if not r.faults:
            continue
        marks = tuple(chaos_check.FaultMark(f["name"], f["t"], b, f["kind"])
                      for f, b in zip(r.faults, r.step.bounds))
        out.append(chaos_check.Window(label(i, r), marks, r.t_end, r.step.transient,
                                      r.step.switchover, r.master, r.step.unit,
                                      r.step.unit_calls))
    return out


def judge(tb, cfg, seed, done, calls, unit_of, writer, tag, t_begin, t_load, t_last, out):
    violations: list[str] = []
    for i, r in enumerate(done):
        if r.error:
            violations.append(f"{label(i, r)}: raised: {r.error}")
        if r.healthy:
            violations.append(f"{label(i, r)}: not healthy {cfg.heal_deadline_s:.0f} s after "
                              f"the heal (units under control, roles, replication): {r.healthy}")
        for rl in r.reloads:
            if rl["status"] is None or rl["status"] >= 500 and rl["status"] not in (502, 503):
                violations.append(f"{label(i, r)}: configuration reload answered "
                                  f"{rl['status']}: {rl['detail']}")
    windows = windows_of(done)
    lost: set[str] = set()
    unit_rec = []
    for w in windows:
        if not w.unit:
            continue
        alive = [c for c in calls if (c.end_t is None or c.end_t >= w.t_start)
                 and c.invite_t <= w.t_end]
        lost |= unit_ops.lost_ok(alive, unit_of, w.unit, w.t_start, w.unit_calls)
        bound = next(r.step.unit_bound_s for i, r in enumerate(done) if label(i, r) == w.step)
        t_rec = unit_ops.recovery(alive, unit_of, w.unit, w.t_start)
        took = None if t_rec is None else t_rec - w.t_start
        unit_rec.append({"step": w.step, "unit": w.unit, "s": took, "bound_s": bound})
        if took is None:
            violations.append(f"{w.step}: no call through {w.unit} answered after the fault")
        elif w.unit_calls == "lost" and took > bound:
            violations.append(f"{w.step}: {w.unit} answered again {took:.2f} s after the "
                              f"fault, bound {bound:.2f} s")
    v = chaos_check.judge(calls, windows, unit_of, lost)
    violations += v.violations
    gap = chaos_check.gaps([c.invite_t for c in calls], t_load, t_last - 1.0)
    if gap > MAX_GAP_S:
        violations.append(f"load: no call placed for {gap:.1f} s (rate {cfg.rate:g}/s): "
                          f"the run proved nothing then")
    # never two active hosts, one holder per unit lease: the hosts' and units' own logs
    views = roles.collect(tb, since=t_begin)
    until = time.time()
    if views.partial:
        violations.append(f"roles: logs unreadable: {views.unreadable}")
    host_ivs = {h: roles.role_intervals(lines, until) for h, lines in views.hosts.items()}
    for h1, h2, s, e in roles.overlaps({h: roles.clip(iv, t_begin, until)
                                        for h, iv in host_ivs.items()}):
        violations.append(f"roles: {h1} and {h2} both active from {s:.3f} to {e:.3f} "
                          f"({e - s:.3f} s)")
    for unit, lines in views.units.items():
        for h1, h2, s, e in roles.double_holders(
                roles.clip(roles.lease_intervals(lines, until), t_begin, until)):
            violations.append(f"roles: {unit} leased to {h1} and {h2} at once from {s:.3f} "
                              f"({e - s:.3f} s)")
    # every acknowledged write on the main database
    acked = {w["name"] for w in writer.writes if w["acked"]}
    try:
        main_ip, present = present_names(tb, WRITER_PREFIX + tag)
        missing = sorted(acked - present)
        if missing:
            violations.append(f"writes: {len(missing)} acknowledged writes missing on the main "
                              f"{main_ip}: {missing[:5]}")
        delete_names(tb, WRITER_PREFIX + tag)
    except (TestbedError, pymysql.err.MySQLError) as exc:
        present, missing = set(), None
        violations.append(f"writes: the main database could not be read: {exc}")
    writes = {"tried": len(writer.writes), "acked": len(acked),
              "present": len(present), "missing": None if missing is None else len(missing),
              "unacked_present": len(present - acked) if present else 0,
              "statuses": _count(str(w["status"]) for w in writer.writes)}
    events = logscan.notable_events(tb, t_begin) if violations else []
    counts = dict(v.counts, faults=sum(len(r.faults) for r in done), steps=len(done),
                  by_kind=_count(f["kind"] for r in done for f in r.faults),
                  by_step=_count(r.step.name for r in done), unit_recovery=unit_rec)
    result = RunResult(seed, done, violations, counts, writes, v.switchovers, out, t_begin,
                       time.time(), events)
    (out / "chaos.json").write_text(json.dumps({
        "seed": seed, "ok": result.ok, "violations": violations, "counts": counts,
        "writes": writes, "switchovers": v.switchovers, "events": events,
        "steps": [{**asdict(r), "step": r.step.to_dict()} for r in done]}, indent=2, default=str))
    return result


def _count(items) -> dict:
    out: dict = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def write_report(result: RunResult, calls, unit_of) -> Path | None:
    """One timeline of the whole run: every call a bar from INVITE to its end, coloured by
    outcome, each step's window shaded from its first fault to healthy again."""
    if not calls:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from harness.report import COLOURS
    t0 = result.t_begin
    calls = sorted(calls, key=lambda c: c.invite_t)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(14, 7), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    for i, c in enumerate(calls):
        end = c.end_t or c.bye_ok_t or c.final_t or c.invite_t
        ax.plot([c.invite_t - t0, end - t0], [i, i], color=COLOURS.get(c.outcome, "grey"),
                linewidth=0.6, solid_capstyle="butt")
    for r in result.steps:
        if not r.faults:
            continue
        s, e = r.faults[0]["t"] - t0, (r.t_end or r.t_healed) - t0
        for a in (ax, ax2):
            a.axvspan(s, e, color="#c62828", alpha=0.10)
        ax.text(s, len(calls) * 1.01, r.step.name, rotation=30, fontsize=6, va="bottom")
        for f in r.faults:
            ax.axvline(f["t"] - t0, color="#c62828", linewidth=0.6, linestyle="--")
    # calls placed and answered per second: a refusing system shows as a dip
    secs = int((max(c.invite_t for c in calls) - t0)) + 1
    placed, answered = [0] * secs, [0] * secs
    for c in calls:
        k = int(c.invite_t - t0)
        placed[k] += 1
        answered[k] += c.answer_t is not None
    ax2.plot(range(secs), placed, color="#757575", linewidth=1.6, linestyle=":",
             label="placed/s")
    ax2.plot(range(secs), answered, color="#2e7d32", linewidth=0.8, label="answered/s")
    ax2.legend(fontsize=7, loc="lower right")
    ax.set_ylabel("calls (by INVITE time)")
    ax2.set_xlabel(f"s since the run began (seed {result.seed})")
    ax.set_title(f"chaos seed {result.seed}: {len(result.steps)} steps, {len(calls)} calls, "
                 f"{len(result.violations)} violations", fontsize=9)
    for name, colour in COLOURS.items():
        ax.plot([], [], color=colour, label=name)
    ax.legend(fontsize=7, loc="upper left")
    path = result.out / "chaos.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary(result: RunResult) -> str:
    c, w = result.counts, result.writes
    lines = [f"chaos seed {result.seed}: {'OK' if result.ok else 'FAILED'} - {c['steps']} steps, "
             f"{c['faults']} faults, {c['calls']} calls judged ({c['transient']} transient, "
             f"{c['transient_dropped']} dropped as allowed, {c['lost']} lost on failed units), "
             f"writes {w['acked']} acknowledged / {w['tried']} tried, missing {w['missing']}",
             "  step                                 faults  healed  healthy",
             ]
    for r in result.steps:
        lines.append(f"  {r.step.name:36} {len(r.faults):6}  {r.t_healed - r.t0:5.1f}s  "
                     f"{'yes' if not r.healthy else 'NO'}")
    lines += [f"  - {v}" for v in result.violations[:40]]
    if len(result.violations) > 40:
        lines.append(f"  (+{len(result.violations) - 40} more in chaos.json)")
    if result.events:
        lines.append("  the nodes' events (deadlock kills, reboots, fences, crashes, stalls, roles):")
        lines += [f"    {e}" for e in result.events[:60]]
    return "\n".join(lines)


def shrink(tb: Testbed, cfg: Config, seed: int, failed: RunResult, out: Path,
           budget_s: float) -> int | None:
    """The shortest prefix of the failed run's steps that still fails, by replay (binary
    search over prefix lengths up to the first failing step; a replay that passes moves
    the search up). None when the budget ran out before any replay failed."""
    first = failed.first_failing_step()
    if first is None:
        return None
    lo, hi, best = 1, first + 1, None
    end = time.monotonic() + budget_s
    while lo <= hi and time.monotonic() < end:
        mid = (lo + hi) // 2
        log(f"shrinking seed {seed}: replaying the first {mid} step(s)")
        r = run(tb, cfg, seed, out / f"shrink-{mid}", steps=mid)
        if r.ok:
            lo = mid + 1
        else:
            best, hi = mid, mid - 1
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=None, help="the plan's seed (default: random)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--duration", type=float, default=None, help="seconds of steps (default 180)")
    g.add_argument("--steps", type=int, default=None, help="run exactly the first N steps")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--shrink-budget", type=float, default=900.0,
                   help="seconds of replays to find the shortest failing prefix (0: none)")
    a = p.parse_args(argv)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(10**6)
    if a.steps is not None and a.steps < 1:
        p.error("--steps must be at least 1")
    try:
        cfg = load_config()
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = a.out or ROOT / "runs" / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}-seed{seed}"
    tb = Testbed()
    try:
        result = run(tb, cfg, seed, out, duration_s=None if a.steps else (a.duration or 180.0),
                     steps=a.steps)
    finally:
        heal_all(tb)
        settle(tb)       # the units back on their own boards, for what runs next
    print(summary(result))
    print(f"history {out / 'history.jsonl'}, timeline {out / 'chaos.png'}, details {out / 'chaos.json'}")
    if result.ok:
        return 0
    if a.shrink_budget > 0:
        n = shrink(tb, cfg, seed, result, out, a.shrink_budget)
        if n is None:
            print(f"shrink: no shorter replay failed within {a.shrink_budget:.0f} s; replay the "
                  f"run: make chaos SEED={seed} STEPS={len(result.steps)}")
        else:
            steps = plan(cfg, seed, n)
            print(f"shortest failing prefix: {n} step(s): "
                  + " -> ".join(s.name for s in steps)
                  + f"\nreplay: make chaos SEED={seed} STEPS={n}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
