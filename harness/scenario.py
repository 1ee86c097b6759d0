"""Runs one operation of the matrix: steady SIPp load through the unit, the fault injected
once enough calls are established, the switchover observed from live roles, then every
call judged by harness.checks. Everything lands in the scenario's run directory."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from . import post_checks
from .checks import Verdict, check
from .faults import FaultSet, db_main_host, from_spec  # noqa: F401  (db_main_host: re-exported)
from .history import History
from .media import MediaCapture, unit_media_ips
from .media import summary as media_summary
from .sipp import DockerExecutor, SippLoad, SippUas
from .testbed import Testbed, log
from .util import wait_for

RECV_TIMEOUT_S = 8.0


class RoleWatcher(threading.Thread):
    """Samples both hosts' roles through the OAM API and records every change; a sample
    with two active hosts is the split brain the seed's design must never show."""

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

    def dual_active(self) -> list[float]:
        return [t for t, r in self.samples if list(r.values()).count("active") > 1]

    def first_active(self, host: str, after: float) -> float | None:
        return next((t for t, r in self.samples if t >= after and r.get(host) == "active"), None)

    def stop(self):
        self.stop_flag.set()
        self.join(timeout=5)


def make_fault(tb: Testbed, op, master: str, slave: str):
    return from_spec(tb, op.fault, master, slave)


def established_now(load: SippLoad) -> int:
    return sum(1 for c in load.calls() if c.answer_t is not None and c.bye_sent_t is None)


def run_operation(tb: Testbed, faults: FaultSet, op, out: Path) -> Verdict:
    out.mkdir(parents=True, exist_ok=True)
    history = History(out / "history.jsonl")
    master, slave = tb.master(), tb.slave()
    history.event("note", text=f"operation {op.id}: {op.seed}", master=master, slave=slave)
    watcher = RoleWatcher(tb, history)
    sipp_dir = tb.dir / "sipp"
    uas = SippUas(DockerExecutor(tb.container("sipp-uas"), sipp_dir, "/work"),
                  tb.ip("sipp-uas", "voip"), name=f"{op.id}-uas")
    warmup_s = op.load.warmup_established / op.load.rate
    load = SippLoad(DockerExecutor(tb.container("sipp-uac"), sipp_dir, "/work"),
                    f"{tb.ip('tmedia-1', 'voip')}:5060", tb.ip("sipp-uac", "voip"),
                    rate=op.load.rate, hold_s=op.load.hold_s,
                    duration_s=warmup_s + 3 + op.load.after_s, name=f"{op.id}-uac",
                    recv_timeout_s=RECV_TIMEOUT_S)
    # the seed's post-switchover checks need calls established before the fault
    prepared = post_checks.prepare(tb) if op.switchover else None
    # each call's media around the fault: RTP from the unit, captured at the far end
    capture = MediaCapture(tb, "sipp-uas", unit_media_ips(tb), f"{op.id}-media")
    watcher.start()
    try:
        with uas, capture:
            with load:
                history.event("note", text=f"load {op.load.rate}/s, hold {op.load.hold_s}s, "
                                           f"{load.ncalls} calls")
                wait_for(lambda: established_now(load) >= op.load.warmup_established,
                         warmup_s + op.load.hold_s + 10,
                         f"{op.load.warmup_established} established calls")
                fault = make_fault(tb, op, master, slave)
                t_fault = faults.inject(fault)
                history.event("fault", action="inject", name=fault.name, t_fault=t_fault,
                              established=established_now(load))
                if op.switchover:
                    wait_for(lambda: watcher.first_active(slave, t_fault), op.max_switchover_s + 10,
                             f"{slave} to become active")
                finished = load.wait()
                history.event("note", text=f"load finished by itself: {finished}")
            uas.stop(grace_s=RECV_TIMEOUT_S)   # let the last BYEs reach the far end
        checks = post_checks.run_all(tb, prepared) if prepared else []
        prepared = None
    finally:
        watcher.stop()
        if prepared is not None:          # the fault path failed: close what prepare opened
            prepared.finish(None)
    for c in checks:
        history.event("note", text=f"post-switchover check {c.name}: {'ok' if c.ok else 'FAILED'}",
                      check=c.name, ok=c.ok, detail=c.detail)
    calls = load.calls(far_end=uas)
    for c in calls:
        history.call(c)
    media = media_summary(capture.streams(), t_fault)
    history.event("note", text=f"media across the fault: {media}", media=media)
    verdict = check(calls, t_fault, master, op.transient, switchover_expected=op.switchover,
                    max_switchover_s=op.max_switchover_s)
    dual = watcher.dual_active()
    result = {"operation": op.id, "seed": op.seed, "master": master, "slave": slave,
              "t_fault": t_fault, "expected_transient": op.transient,
              "expected_switchover": op.switchover,
              "role_switch_s": (watcher.first_active(slave, t_fault) - t_fault)
              if op.switchover and watcher.first_active(slave, t_fault) else None,
              "dual_active_samples": len(dual), "verdict": verdict.to_dict(), "media": media,
              "post_checks": [{"name": c.name, "ok": c.ok, "detail": c.detail,
                               "duration_s": c.duration} for c in checks],
              "summary": verdict.summary()}
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    history.close()
    log(f"{op.id}: {verdict.summary()}")
    if dual:
        raise AssertionError(f"two active hosts at {len(dual)} samples (first at {dual[0]:.3f})")
    other = slave if op.fault["target"] == "master" else master
    if not any(t > t_fault and r.get(other) not in (None, "unreachable") for t, r in watcher.samples):
        raise AssertionError(f"{op.id}: the roles of {other} were never seen after the fault "
                             f"(OAM unreachable): the dual-active check proved nothing")
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    if failed:
        raise AssertionError(f"{op.id}: post-switchover checks failed: " + "; ".join(failed))
    if not op.switchover and watcher.first_active(slave, t_fault) is not None:
        raise AssertionError(f"{op.id}: the seed expects no switchover, but {slave} became active")
    return verdict
