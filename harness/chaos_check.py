"""The judge of a chaos run (scenarios/chaos.py): every call against the fault windows it
crossed, in one history. Pure: calls and windows in, violations out (no clock, no Docker).

A window is one step of the run: its faults, each with its injection time and the
bound its kind gives (max_switchover_s), the step's documented outcome (`transient`
accept or drop, whether the active host moves, the failed unit and whether its calls
are lost), and the time the testbed was healthy again after the heal.

Per fault j of a window, injected at t_j: t_sw_j is the answer time of the first call
placed at or after t_j and answered (by a host other than the master of the window's
start when the window moves the active role). The unsettled span of the fault is
[t_j, t_sw_j); a call placed before t_sw_j and still in setup at t_j (or placed after
it) is *transient*. Every other call is placed while the
system is settled, in a window (after its switchovers, through its heal) or between
windows, and must be accepted and end normally at both ends; so must every call
established before a fault, unless it ran through a failed unit (`lost_ok`, counted).

- transient, window `accept`: as every other call; window `drop`: completed, or
  refused 503, or unanswered (harness/checks.py's rule).
- t_sw_j - t_j above the fault's bound is a violation, unless the next fault of the
  window came first (the second fault's bound then counts); none at all too.
- a call that never ended hung: a violation wherever it ran.

This is what finds a system that keeps refusing a share of new calls while a double
fault lasts: those calls are placed after the switchover, in the settled part of the
window, and each refusal is a violation naming its window."""
from __future__ import annotations

from dataclasses import dataclass, field

from .checks import DROP_CODES, _completion_problem
from .sipp import CallRecord


@dataclass(frozen=True)
class FaultMark:
    name: str
    t: float                  # injected at
    bound_s: float            # the kind's max_switchover_s
    kind: str = ""            # its registry kind


@dataclass(frozen=True)
class Window:
    step: str
    faults: tuple[FaultMark, ...]
    t_end: float              # healthy again after the heal
    transient: str = "accept"
    switchover: bool = False
    old_master: str | None = None
    unit: str | None = None   # the failed unit ...
    unit_calls: str = "kept"  # ... and what happens to its calls (lost | kept)

    @property
    def t_start(self) -> float:
        return self.faults[0].t


@dataclass
class ChaosVerdict:
    counts: dict[str, int] = field(default_factory=lambda: {
        "calls": 0, "settled": 0, "transient": 0, "transient_dropped": 0, "lost": 0})
    violations: list[str] = field(default_factory=list)
    switchovers: list[dict] = field(default_factory=list)   # per fault: step, name, s

    @property
    def ok(self) -> bool:
        return not self.violations


def switchover_at(calls: list[CallRecord], w: Window, t: float) -> float | None:
    answers = [c.answer_t for c in calls if c.invite_t >= t and c.answer_t is not None
               and (not w.switchover or (c.gateway is not None and c.gateway != w.old_master))]
    return min(answers, default=None)


def _transient(c: CallRecord, t_fault: float, t_sw: float) -> bool:
    """Placed before the switchover and in setup at the fault or after it: not answered
    before the fault, not over before it (harness/checks.py's classes)."""
    if c.invite_t >= t_sw:
        return False
    if c.answer_t is not None and c.answer_t < t_fault:
        return False                         # established
    over = c.end_t if c.end_t is not None else c.final_t
    return not (over is not None and over < t_fault)


def _window_of(c: CallRecord, windows: list[Window]) -> Window | None:
    """The window a call ran through: the last one begun before the call ended."""
    end = c.end_t if c.end_t is not None else float("inf")
    inside = [w for w in windows if w.t_start <= end and c.invite_t <= w.t_end]
    return inside[-1] if inside else None


def judge(calls: list[CallRecord], windows: list[Window], unit_of: dict[str, str],
          lost_ok: set[str] = frozenset()) -> ChaosVerdict:
    """Judge every call of the run (module docstring). `lost_ok`: Call-IDs that ran through
    a failed unit of a `lost` window (from harness/unit_ops.lost_ok, per window)."""
    v = ChaosVerdict()
    windows = sorted(windows, key=lambda w: w.t_start)
    unsettled: list[tuple[float, float, Window]] = []
    for w in windows:
        for j, f in enumerate(w.faults):
            nxt = w.faults[j + 1].t if j + 1 < len(w.faults) else None
            t_sw = switchover_at(calls, w, f.t)
            took = None if t_sw is None else t_sw - f.t
            v.switchovers.append({"step": w.step, "fault": f.name, "kind": f.kind, "s": took,
                                  "bound_s": f.bound_s})
            superseded = nxt is not None and (t_sw is None or t_sw > nxt)
            if not superseded:
                if t_sw is None:
                    v.violations.append(f"{w.step}: no call placed after {f.name} was answered")
                elif took > f.bound_s:
                    v.violations.append(f"{w.step}: first new call answered {took:.2f} s after "
                                        f"{f.name}, bound {f.bound_s:.2f} s")
            unsettled.append((f.t, t_sw if t_sw is not None else w.t_end, w))
    for c in calls:
        v.counts["calls"] += 1
        span = next(((s, e, w) for s, e, w in unsettled if _transient(c, s, e)), None)
        where = span[2].step if span else (getattr(_window_of(c, windows), "step", None)
                                           or "no fault")
        if c.call_id in lost_ok and (not c.ended or _completion_problem(c)):
            v.counts["lost"] += 1
            continue
        if not c.ended:
            v.violations.append(f"{where}: call {c.call_id} never ended (hung, {c.outcome})")
            continue
        problem = _completion_problem(c)
        if span is None:
            v.counts["settled"] += 1
            if problem:
                v.violations.append(f"{where}: call {c.call_id} placed while settled: {problem}")
            continue
        v.counts["transient"] += 1
        w = span[2]
        if problem is None:
            continue
        if w.transient == "drop" and c.answer_t is None and \
                (c.final_code is None or c.final_code in DROP_CODES):
            v.counts["transient_dropped"] += 1
            continue
        v.violations.append(f"{where}: transient call {c.call_id}: {problem}")
    return v


def gaps(invite_times: list[float], t0: float, t1: float) -> float:
    """The longest time in [t0, t1] with no call placed (a stalled caller proves nothing)."""
    ts = sorted(t for t in invite_times if t0 <= t <= t1)
    points = [t0] + ts + [t1]
    return max(b - a for a, b in zip(points, points[1:]))
