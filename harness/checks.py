"""Judge the calls of one scenario against the fault, as the seed documents.

Classes (t_fault = fault inject time, t_sw = switchover completed):

- before:      over before the fault (rejected, or hung up before t_fault):
               the baseline, which must be clean.
- established: answered before t_fault and still up then.
- transient:   INVITE sent before t_sw, not answered before t_fault.
- new:         INVITE sent at or after t_sw.

t_sw is the answer time of the first call whose INVITE was sent after t_fault
and which was answered by a gateway other than the old master (X-Tb-Gateway);
for an operation with no switchover expected, by any gateway. The switchover
time is t_sw - t_fault.

Rules:

- before, established, new: the call completed (BYE sent, 200 received) and
  the far end received the BYE (CallRecord.far_bye, joined on X-Tb-Call).
- transient, "accept": the same as above.
- transient, "drop" ("will drop transient calls"): completed as above, or
  dropped, and a dropped transient call may end only with 503 (no route, no
  controller: the unit's own refusal) or with no final answer at all (SIPp's
  receive timeout). Any other code (a 486, a 403, a 500) is not what a
  switchover does to a call in setup: a violation. An answered call that is then
  lost, or a call that never ends, is a violation.
- a call of a failed unit (`lost_ok`: the calls of a unit powered off or cut,
  which the real system loses too) may end in any way; it is counted as lost
  and reported, never judged ok or hidden.
- any call that never ended (still open when SIPp stopped) hung: violation.
- no switchover within max_switchover_s, no established call, or no new call
  (the load proved nothing) are violations; so is a switchover operation with
  fewer than `min_transient` transient calls (nothing was proven about them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from harness.sipp import CallRecord

CLASSES = ("before", "established", "transient", "new")
TRANSIENT = ("accept", "drop")


@dataclass(frozen=True)
class Violation:
    call_id: str | None   # None for a scenario-level violation
    cls: str              # a class from CLASSES, or "scenario"
    reason: str

    def __str__(self):
        who = f"{self.cls} call {self.call_id}" if self.call_id else self.cls
        return f"{who}: {self.reason}"


@dataclass
class Verdict:
    t_fault: float
    t_sw: float | None
    switchover_s: float | None
    counts: dict[str, int]
    classes: dict[str, str]                 # call_id -> class
    violations: list[Violation] = field(default_factory=list)
    drop_codes: dict[str, int] = field(default_factory=dict)   # transient dropped: code -> n

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        sw = "none" if self.switchover_s is None else f"{self.switchover_s:.3f}s"
        counts = ", ".join(f"{c}={self.counts[c]}" for c in CLASSES)
        if self.counts.get("lost"):
            counts += f", lost (failed unit)={self.counts['lost']}"
        head = f"{'OK' if self.ok else 'FAILED'}: switchover {sw}; {counts}"
        return "\n".join([head, *(f"  - {v}" for v in self.violations)])

    def to_dict(self) -> dict:
        return {"ok": self.ok, "t_fault": self.t_fault, "t_sw": self.t_sw,
                "switchover_s": self.switchover_s, "counts": dict(self.counts),
                "drop_codes": dict(self.drop_codes),
                "classes": dict(self.classes),
                "violations": [vars(v) for v in self.violations]}


def switchover_time(calls: Iterable[CallRecord], t_fault: float,
                    old_master: str | None, switchover_expected: bool = True) -> float | None:
    """t_sw as defined in the module docstring, or None if no call proves it."""
    answers = [c.answer_t for c in calls
               if c.invite_t >= t_fault and c.answer_t is not None
               and (not switchover_expected
                    or (c.gateway is not None and c.gateway != old_master))]
    return min(answers, default=None)


def classify(call: CallRecord, t_fault: float, t_sw: float | None) -> str:
    if (call.final_t is not None and call.answer_t is None and call.final_t < t_fault) \
            or (call.bye_sent_t is not None and call.bye_sent_t < t_fault) \
            or (call.answer_t is None and call.ended and call.end_t is not None
                and call.end_t < t_fault):
        return "before"
    if call.answer_t is not None and call.answer_t < t_fault:
        return "established"
    if t_sw is not None and call.invite_t >= t_sw:
        return "new"
    return "transient"


DROP_CODES = (503,)   # the only final answer a dropped transient call may get


def _dropped_as_allowed(c: CallRecord) -> bool:
    """A transient call the seed lets the system drop: unanswered, or refused 503."""
    return c.answer_t is None and (c.final_code is None or c.final_code in DROP_CODES)


def _completion_problem(c: CallRecord) -> str | None:
    """Why the call did not end with a normal BYE exchange at both ends, or None."""
    if c.answer_t is None:
        reason = getattr(c, "final_reason", None)
        return (f"rejected with {c.final_code}" + (f" {reason}" if reason else "")
                if c.outcome == "failed"
                else "never answered" + (f" ({c.abort})" if c.abort else ""))
    if c.peer_bye_t is not None and (c.bye_sent_t is None or c.peer_bye_t < c.bye_sent_t):
        return "released by the network (BYE received)"
    if c.bye_sent_t is None:
        return "BYE never sent" + (f" ({c.abort})" if c.abort else "")
    if c.bye_code is None:
        return "BYE got no response"
    if c.bye_code != 200:
        return f"BYE answered {c.bye_code}"
    if c.far_bye is None:
        return "far end not joined: cannot tell it saw the BYE"
    if not c.far_bye:
        return "far end never received the BYE"
    return None


def check(calls: Iterable[CallRecord], t_fault: float, old_master: str | None,
          transient: str = "accept", *, switchover_expected: bool = True,
          max_switchover_s: float = 30.0, min_transient: int = 0,
          lost_ok: frozenset[str] = frozenset()) -> Verdict:
    """Classify every UAC call against the fault and apply the rules above.

    `transient` is the seed's expectation for calls in setup during the
    switchover: "accept" (still able to accept transient calls) or "drop"
    (will drop transient calls). `old_master` is the name the gateway put in
    X-Tb-Gateway before the fault; it may be None only when no switchover is
    expected. `lost_ok`: Call-IDs on a failed unit (counted in `counts["lost"]`).
    """
    if transient not in TRANSIENT:
        raise ValueError(f"transient must be one of {TRANSIENT}, not {transient!r}")
    if switchover_expected and not old_master:
        raise ValueError("old_master is required when a switchover is expected")
    calls = list(calls)
    for c in calls:
        if c.side != "uac" or c.invite_t is None:
            raise ValueError(f"call {c.call_id}: not a UAC record with an INVITE time")

    t_sw = switchover_time(calls, t_fault, old_master, switchover_expected)
    v = Verdict(t_fault, t_sw, None if t_sw is None else t_sw - t_fault,
                {c: 0 for c in CLASSES}, {})
    v.counts.update(lost=0, transient_accepted=0, transient_dropped=0)
    for c in calls:
        cls = classify(c, t_fault, t_sw)
        v.classes[c.call_id] = cls
        v.counts[cls] += 1
        if c.call_id in lost_ok and (not c.ended or _completion_problem(c)):
            v.counts["lost"] += 1      # a failed unit's call: lost, as on the real system
            continue
        if cls == "transient":
            if c.answer_t is not None:
                v.counts["transient_accepted"] += 1
            else:
                v.counts["transient_dropped"] += 1
                code = str(c.final_code) if c.final_code else "no answer"
                v.drop_codes[code] = v.drop_codes.get(code, 0) + 1
        if not c.ended:
            v.violations.append(Violation(c.call_id, cls, f"never ended (hung, {c.outcome})"))
            continue
        problem = _completion_problem(c)
        if problem is None:
            continue
        if cls == "transient" and transient == "drop" and _dropped_as_allowed(c):
            continue  # refused 503 or timed out during the switchover: allowed
        if cls == "transient" and transient == "drop" and c.answer_t is None:
            problem += " (a dropped transient call may only get 503 or no answer)"
        v.violations.append(Violation(c.call_id, cls, problem))

    what = f"answered by a gateway other than {old_master}" if switchover_expected \
        else "answered"
    if t_sw is None:
        v.violations.append(Violation(None, "scenario",
                                      f"no switchover: no call set up after the fault was {what}"))
    elif v.switchover_s > max_switchover_s:
        v.violations.append(Violation(None, "scenario", f"switchover took {v.switchover_s:.3f}s"
                                      f" > {max_switchover_s}s"))
    if switchover_expected and v.counts["transient"] < min_transient:
        v.violations.append(Violation(None, "scenario",
                                      f"{v.counts['transient']} transient calls, fewer than "
                                      f"{min_transient}: nothing proven about calls in setup"))
    for cls in ("established", "new"):
        if v.counts[cls] == 0:
            v.violations.append(Violation(None, "scenario",
                                          f"no {cls} call: the load was too small to prove anything"))
    return v


def load_problems(calls: list[CallRecord], placed: int | None, t_fault: float, *,
                  warmup_established: int, established: int, after_s: float,
                  rate: float) -> list[str]:
    """Did the load prove anything? Every call SIPp says it placed is judged (`placed`,
    None when its count could not be read), at least the warm-up's calls were
    established at the fault, and new calls were placed across the whole window after it
    (no stall of the caller hid a refusal)."""
    problems = []
    if placed is None:
        problems.append(f"{len(calls)} calls judged, SIPp's count of the calls it placed unreadable")
    elif len(calls) != placed:
        problems.append(f"{len(calls)} calls judged, but SIPp says it placed {placed}")
    if established < warmup_established:
        problems.append(f"{established} calls established at the fault, fewer than the "
                        f"warm-up's {warmup_established}")
    after = sorted(c.invite_t for c in calls if c.invite_t >= t_fault)
    if not after:
        problems.append("no call placed after the fault")
        return problems
    # the caller keeps its rate: the last INVITE lands near the end of the window, and
    # no gap between INVITEs is many inter-arrival times long
    if after[-1] < t_fault + after_s - 2.0:
        problems.append(f"the last call was placed {after[-1] - t_fault:.1f} s after the fault, "
                        f"the window is {after_s:.0f} s")
    gap = _stall(after, t_fault, after[-1], rate)
    if gap:
        problems.append(f"no call placed for {gap:.1f} s after the fault (rate {rate:g}/s)")
    return problems


def _stall(invites: list[float], start: float, end: float, rate: float) -> float | None:
    """The longest time without an INVITE between start and end (sorted times), when it
    is many inter-arrival times long: the caller stalled."""
    gap = max(b - a for a, b in zip([start] + invites, invites + [end]))
    return gap if gap > 5.0 / rate + 1.0 else None


def open_load_problems(calls: list[CallRecord], created: list[int | None], t0: float,
                       t_quit: float, rate: float) -> list[str]:
    """Did a load told to stop at a condition (SIPp's soft quit at t_quit) prove anything
    from t0 on? Every call its SIPp agents say they created (`created`, one per agent) is
    judged, and calls were placed across the whole window, no gap many inter-arrival
    times long (a stalled caller would hide a refusal)."""
    problems = []
    if None in created or sum(created) != len(calls):
        problems.append(f"{len(calls)} calls judged, SIPp says it placed {created}")
    invites = sorted(c.invite_t for c in calls if c.invite_t is not None and c.invite_t >= t0)
    gap = _stall(invites, t0, t_quit, rate)
    if gap:
        problems.append(f"no call placed for {gap:.1f} s between {t0:.1f} and the "
                        f"load's end (rate {rate:g}/s)")
    return problems


def assert_ok(verdict: Verdict) -> None:
    """Fail a test with the verdict's summary (every violation, by call id)."""
    if not verdict.ok:
        raise AssertionError(verdict.summary())


def assert_switchover_within(verdict: Verdict, seconds: float) -> None:
    if verdict.switchover_s is None or verdict.switchover_s > seconds:
        raise AssertionError(f"switchover {verdict.switchover_s} s, expected <= {seconds} s")
