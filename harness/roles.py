"""Never two active hosts, observed where it matters: three views read without the
network (a cut that hides a host from the OAM API does not block `docker exec`).

1. The hosts' role logs (`ROLE_LOG` in host-a, host-b): every role transition of
   toolpack_sys_manager, `{"t", "host", "role", "epoch", "why"}`; a host that died active
   is closed by a `down` line stamped with its last liveness stamp.
2. The units' lease logs (`LEASE_LOG` in tmedia-1..3): `granted` / `expired` /
   `released` / `lost` (the board died while leased) with the holder.
3. The SIP side: `X-Tb-Gateway` of every answered call (CallRecord.gateway).

All containers share one kernel clock, so the `time.time()` stamps compare across them.
A log read while its writer is dead (stale liveness stamp: the host or board is back but
has not closed it yet) is closed at that stamp by `close_stale`.

The pure functions below take parsed lines and explicit times (no clock); `collect`
reads the logs, `judge` turns the views into SubChecks (harness/verdict.py):

- "roles: hosts' logs": no two overlapping active intervals; the expected host active at
  `until`; a switchover (or none) as expected, `switchover_s` = first active start of the
  new master after t_fault - t_fault.
- "roles: units' lease holder": one holder per unit at a time; a unit leased to a host
  that is not active for longer than `lease_slack_s` (the lease runs on for up to one
  lease after its holder died or demoted); an active host without the lease of a strict
  majority of the units for longer than `majority_slack_s`.
- "roles: SIP gateway": with a switchover, no call answered by the old master after t_sw
  (INVITE sent at or after t_sw, or answered more than `sip_slack_s` after it: a call
  routed just before may be answered just after); without one, every answered call
  answered by the master.

A view with nothing to judge (a container that could not be read, no line that tells a
host's role, no answered call) is `unknown`, never ok.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

import docker

from .testbed import TestbedError
from .util import each
from .verdict import SubCheck, failed, ok, unknown

HOSTS = ("host-a", "host-b")
UNITS = ("tmedia-1", "tmedia-2", "tmedia-3")
ROLE_LOG = "/var/lib/toolpack/roles.jsonl"
LEASE_LOG = "/var/lib/tmedia/lease.jsonl"
ACTIVE = "active"
HELD = "held"
LEASE_ENDS = ("expired", "released", "lost")
STALE_S = 1.0

CHECK_HOSTS = "roles: hosts' logs"
CHECK_LEASES = "roles: units' lease holder"
CHECK_SIP = "roles: SIP gateway"


class Interval(NamedTuple):
    start: float
    end: float
    role: str
    epoch: object


class LeaseInterval(NamedTuple):
    start: float
    end: float
    holder: str
    epoch: object


# ---- parsing (pure) -----------------------------------------------------------------
def parse_lines(text: str) -> list[dict]:
    """JSON objects with a numeric `t`, in file order; blank and torn lines skipped."""
    out = []
    for raw in text.splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("t"), (int, float)):
            out.append(rec)
    return out


def role_intervals(lines: Iterable[dict], until: float) -> list[Interval]:
    """One host's role lines -> [(start, end, role, epoch)], each role until the next line
    that changes it; the last one open until `until`. A line repeating the role (a
    resumed sys_manager) continues the interval. Lines after `until` are ignored."""
    out: list[Interval] = []
    cur = None                          # (start, role, epoch)
    for rec in lines:
        t, role = float(rec["t"]), str(rec.get("role"))
        if t > until:
            break
        if cur is not None and cur[1] == role:
            continue
        if cur is not None:
            out.append(Interval(cur[0], max(cur[0], t), cur[1], cur[2]))
        cur = (t, role, rec.get("epoch"))
    if cur is not None:
        out.append(Interval(cur[0], max(cur[0], until), cur[1], cur[2]))
    return out


def lease_intervals(lines: Iterable[dict], until: float) -> list[LeaseInterval]:
    """One unit's lease lines -> [(start, end, holder, epoch)]. A holder's interval runs
    from `granted` to its own `expired` / `released` / `lost` line (or `until`); a grant
    to another holder does not end it, so a unit with two holders at once shows as two
    overlapping intervals (`double_holders`)."""
    open_: dict[str, tuple[float, object]] = {}
    out: list[LeaseInterval] = []
    for rec in lines:
        t, event, holder = float(rec["t"]), rec.get("event"), rec.get("holder")
        if t > until:
            break
        if not isinstance(holder, str):
            continue
        if event == "granted" and holder not in open_:
            open_[holder] = (t, rec.get("epoch"))
        elif event in LEASE_ENDS and holder in open_:
            start, epoch = open_.pop(holder)
            out.append(LeaseInterval(start, max(start, t), holder, epoch))
    for holder, (start, epoch) in open_.items():
        out.append(LeaseInterval(start, max(start, until), holder, epoch))
    return sorted(out)


def close_stale(lines: list[dict], stamp: float | None, read_at: float,
                stale_s: float = STALE_S) -> list[dict]:
    """The lines, plus the closing line their dead writer has not written yet: when the
    last line leaves a host active (or a unit leased) and its liveness stamp was older
    than `stale_s` when the log was read, the writer is dead or stopped (a live one stamps
    every 20 ms, a board every 0.1 s): the interval ends at that stamp, as the next start
    of the writer will write it (role_log.py, LeaseLog)."""
    if not lines or stamp is None or read_at - stamp <= stale_s:
        return lines
    last = lines[-1]
    t = max(stamp, float(last["t"]))
    if last.get("role") == ACTIVE:
        return lines + [{**last, "t": t, "role": "down", "why": "stale liveness stamp"}]
    if last.get("event") == "granted":
        return lines + [{**last, "t": t, "event": "lost", "why": "stale liveness stamp"}]
    return lines


def clip(intervals, since: float, until: float) -> list:
    """The parts of the intervals inside [since, until] (empty ones dropped)."""
    out = []
    for iv in intervals:
        s, e = max(iv[0], since), min(iv[1], until)
        if e > s:
            out.append(iv._replace(start=s, end=e))
    return out


def overlaps(intervals_by_host: dict[str, list], role: str = ACTIVE
             ) -> list[tuple[str, str, float, float]]:
    """(host1, host2, start, end) for every pair of `role` intervals of two hosts that
    overlap for a positive time."""
    names = sorted(intervals_by_host)
    out = []
    for i, h1 in enumerate(names):
        for h2 in names[i + 1:]:
            for a in intervals_by_host[h1]:
                for b in intervals_by_host[h2]:
                    if a[2] != role or b[2] != role:
                        continue
                    s, e = max(a[0], b[0]), min(a[1], b[1])
                    if e > s:
                        out.append((h1, h2, s, e))
    return sorted(out, key=lambda o: o[2])


def double_holders(intervals: list[LeaseInterval]) -> list[tuple[str, str, float, float]]:
    """Two holders of one unit at once (the unit's lease rule makes it impossible)."""
    by_holder: dict[str, list] = {}
    for iv in intervals:
        by_holder.setdefault(iv.holder, []).append(Interval(iv.start, iv.end, HELD, iv.epoch))
    return overlaps(by_holder, HELD)


def _merge(spans) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted((s, e) for s, e, *_ in spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _subtract(spans, minus) -> list[tuple[float, float]]:
    """The parts of `spans` not covered by `minus`."""
    out = []
    cut = _merge(minus)
    for s, e in _merge(spans):
        for ms, me in cut:
            if me <= s or ms >= e:
                continue
            if ms > s:
                out.append((s, ms))
            s = max(s, me)
            if s >= e:
                break
        if s < e:
            out.append((s, e))
    return out


def active_spans(roles: dict[str, list[Interval]], host: str) -> list[tuple[float, float]]:
    return [(iv.start, iv.end) for iv in roles.get(host, []) if iv.role == ACTIVE]


def lease_findings(leases: dict[str, list[LeaseInterval]],
                   roles: dict[str, list[Interval]] | None, units_total: int,
                   lease_slack_s: float = 2.0, majority_slack_s: float = 0.5) -> list[str]:
    """The lease holders against the active hosts (all intervals already clipped to the
    window); `roles` None (a host's log unread): only the double holders. The majority
    is checked only when `leases` has every unit (`units_total`)."""
    findings = []
    for unit in sorted(leases):
        for h1, h2, s, e in double_holders(leases[unit]):
            findings.append(f"{unit} leased to {h1} and {h2} at once from {s:.3f} to {e:.3f}")
    if roles is None:
        return findings
    for unit in sorted(leases):
        for iv in leases[unit]:
            for s, e in _subtract([(iv.start, iv.end)], active_spans(roles, iv.holder)):
                if e - s > lease_slack_s:
                    findings.append(f"{unit} leased to {iv.holder} from {s:.3f} to {e:.3f} "
                                    f"({e - s:.3f} s) while {iv.holder} was not active")
    if len(leases) < units_total:
        return findings
    for host in sorted(roles):
        for a_s, a_e in active_spans(roles, host):
            cuts = sorted({a_s, a_e} | {t for ivs in leases.values() for iv in ivs
                                         for t in (iv.start, iv.end) if a_s < t < a_e})
            short = []
            for s, e in zip(cuts, cuts[1:]):
                mid = (s + e) / 2
                held = sum(1 for ivs in leases.values()
                           if any(iv.holder == host and iv.start <= mid < iv.end for iv in ivs))
                if 2 * held <= units_total:
                    short.append((s, e))
            for s, e in _merge(short):
                if e - s > majority_slack_s:
                    findings.append(f"{host} active from {s:.3f} to {e:.3f} ({e - s:.3f} s) "
                                    f"without the lease of a majority of the {units_total} units")
    return findings


def sip_findings(calls, t_sw: float | None, old_master: str, switchover_expected: bool,
                 sip_slack_s: float = 1.0) -> list[str]:
    """The SIP-side rules (module docstring) over answered calls with a gateway."""
    out = []
    for c in sorted((c for c in calls if c.answer_t is not None and c.gateway is not None),
                    key=lambda c: c.answer_t):
        if switchover_expected:
            if t_sw is not None and c.gateway == old_master and (
                    (c.invite_t is not None and c.invite_t >= t_sw) or c.answer_t > t_sw + sip_slack_s):
                out.append(f"call {c.call_id} answered by the old master {old_master} at "
                           f"{c.answer_t:.3f}, after the switchover at {t_sw:.3f}")
        elif c.gateway != old_master:
            out.append(f"call {c.call_id} answered by {c.gateway} at {c.answer_t:.3f}, "
                       f"not by the master {old_master}")
    return out


# ---- reading the logs ----------------------------------------------------------------
@dataclass
class RoleViews:
    since: float
    read_at: float
    hosts: dict[str, list[dict]] = field(default_factory=dict)   # host -> role lines
    units: dict[str, list[dict]] = field(default_factory=dict)   # board -> lease lines
    unreadable: dict[str, str] = field(default_factory=dict)     # container -> why
    stamps: dict[str, float | None] = field(default_factory=dict)  # liveness stamp mtimes

    @property
    def partial(self) -> bool:
        return bool(self.unreadable)


def _read(tb, name: str, path: str) -> tuple[list[dict] | None, str | None]:
    try:
        res = tb.container(name).exec_run(["cat", path])
    except (TestbedError, docker.errors.DockerException) as exc:   # not running, gone
        return None, f"cannot exec in {name}: {exc}"
    if res.exit_code != 0:
        return None, f"cat {path} in {name}: exit {res.exit_code}: " \
                     f"{res.output.decode(errors='replace').strip()}"
    return parse_lines(res.output.decode(errors="replace")), None


def _stamp(tb, name: str, path: str) -> float | None:
    """The mtime of the log's liveness stamp (`<path>.alive`), or None."""
    try:
        res = tb.container(name).exec_run(["date", "-r", path + ".alive", "+%s.%N"])
    except (TestbedError, docker.errors.DockerException):
        return None
    try:
        return float(res.output.decode().strip()) if res.exit_code == 0 else None
    except ValueError:
        return None


def collect(tb, since: float, hosts=HOSTS, units=UNITS) -> RoleViews:
    """Read the hosts' role logs and the units' lease logs through `docker exec`. A
    container that is down or has no log is listed in `unreadable` (the view is partial).
    An interval whose writer is dead (stale liveness stamp) is closed (`close_stale`)."""
    views = RoleViews(since=since, read_at=time.time())

    def read(job):          # a few `docker exec`s each: side by side
        name, path, into = job
        lines, why = _read(tb, name, path)
        if lines is None:
            views.unreadable[name] = why
            return
        views.stamps[name] = _stamp(tb, name, path)
        into[name] = close_stale(lines, views.stamps[name], views.read_at)
    each([(name, path, into)
          for names, path, into in ((hosts, ROLE_LOG, views.hosts), (units, LEASE_LOG, views.units))
          for name in names], read)
    return views


# ---- the verdict ---------------------------------------------------------------------
def _hosts_check(views: RoleViews, roles: dict[str, list[Interval]], t_fault: float,
                 old_master: str, new_master: str, switchover_expected: bool,
                 until: float) -> SubCheck:
    missing = {h: views.unreadable[h] for h in HOSTS if h in views.unreadable}
    if missing:
        return unknown(CHECK_HOSTS, "partial view: " + "; ".join(missing.values()),
                       unreadable=missing)
    silent = [h for h, ivs in roles.items() if not ivs]
    if silent:
        return unknown(CHECK_HOSTS, f"no role line up to {until:.3f} in the log of "
                                    f"{', '.join(silent)}: its role is unknown")
    window = {h: clip(ivs, views.since, until) for h, ivs in roles.items()}
    both = overlaps(window)
    at_end = [h for h, ivs in window.items() if ivs and ivs[-1].role == ACTIVE
              and ivs[-1].end >= until]
    first = next((iv for iv in window.get(new_master, [])
                  if iv.role == ACTIVE and iv.start >= t_fault), None)
    switchover_s = None if first is None else first.start - t_fault
    data = {"overlaps": [list(o) for o in both], "switchover_s": switchover_s,
            "active_at_end": at_end,
            "transitions": sum(len(ivs) for ivs in window.values())}
    problems = [f"{h1} and {h2} both active from {s:.3f} to {e:.3f} ({e - s:.3f} s)"
                for h1, h2, s, e in both]
    expected = new_master if switchover_expected else old_master
    if at_end != [expected]:
        problems.append(f"active at {until:.3f}: {at_end or 'nobody'}, expected {expected}")
    if switchover_expected and first is None:
        problems.append(f"{new_master} never became active after the fault at {t_fault:.3f}")
    if not switchover_expected:
        if first is not None:
            problems.append(f"no switchover expected, but {new_master} became active at "
                            f"{first.start:.3f}")
        gaps = _subtract([(t_fault, until)], active_spans(window, old_master))
        problems += [f"the master {old_master} was not active from {s:.3f} to {e:.3f}"
                     for s, e in gaps]
    if problems:
        return failed(CHECK_HOSTS, "; ".join(problems), **data)
    sw = f"{new_master} active {switchover_s:.3f} s after the fault" if first else \
        f"{old_master} active throughout"
    return ok(CHECK_HOSTS, f"never two active hosts; {sw}", **data)


def _leases_check(views: RoleViews, roles: dict[str, list[Interval]], until: float,
                  lease_slack_s: float, majority_slack_s: float) -> SubCheck:
    missing = {u: views.unreadable[u] for u in UNITS if u in views.unreadable}
    leases = {u: clip(lease_intervals(lines, until), views.since, until)
              for u, lines in views.units.items()}
    window = {h: clip(ivs, views.since, until) for h, ivs in roles.items()}
    hosts_known = all(h in views.hosts for h in HOSTS)
    findings = lease_findings(leases, window if hosts_known else None, len(UNITS),
                              lease_slack_s, majority_slack_s)
    data = {"findings": len(findings), "units": sorted(leases), "unreadable": missing,
            "holders": {u: sorted({iv.holder for iv in ivs}) for u, ivs in leases.items()}}
    if findings:
        return failed(CHECK_LEASES, "; ".join(findings[:5]) +
                      (f" (+{len(findings) - 5} more)" if len(findings) > 5 else ""), **data)
    if missing or not hosts_known:
        why = "; ".join(list(missing.values()) + ([] if hosts_known else
                                                   ["a host's role log could not be read"]))
        return unknown(CHECK_LEASES, f"partial view: {why}", **data)
    if not any(leases.values()):
        return unknown(CHECK_LEASES, f"no unit was leased between {views.since:.3f} and "
                                     f"{until:.3f}", **data)
    return ok(CHECK_LEASES, "each unit leased to one host at a time, and to the active one",
              **data)


def _sip_check(calls, t_sw, old_master, switchover_expected, since, until,
               sip_slack_s) -> SubCheck:
    answered = [c for c in calls if c.answer_t is not None and since <= c.answer_t <= until]
    named = [c for c in answered if c.gateway is not None]
    by_gw: dict[str, int] = {}
    for c in named:
        by_gw[c.gateway] = by_gw.get(c.gateway, 0) + 1
    data = {"answered": len(answered), "by_gateway": by_gw,
            "unattributed": len(answered) - len(named), "violations": 0}
    if not named:
        return unknown(CHECK_SIP, "no answered call names its gateway", **data)
    if switchover_expected and t_sw is None:
        return unknown(CHECK_SIP, "no switchover seen in the calls (t_sw unknown)", **data)
    found = sip_findings(named, t_sw, old_master, switchover_expected, sip_slack_s)
    data["violations"] = len(found)
    if found:
        return failed(CHECK_SIP, f"{len(found)} call(s): " + "; ".join(found[:5]), **data)
    if data["unattributed"]:
        return unknown(CHECK_SIP, f"{data['unattributed']} answered call(s) without "
                                  f"X-Tb-Gateway", **data)
    rule = (f"no call answered by {old_master} after {t_sw:.3f}" if switchover_expected
            else f"every answered call answered by {old_master}")
    return ok(CHECK_SIP, f"{rule} ({len(named)} answered)", **data)


def judge(views: RoleViews, calls, t_fault: float, t_sw: float | None, old_master: str,
          new_master: str, switchover_expected: bool, until: float, *,
          lease_slack_s: float = 2.0, majority_slack_s: float = 0.5,
          sip_slack_s: float = 1.0) -> list[SubCheck]:
    """The three views judged over [views.since, until] (module docstring)."""
    calls = list(calls)
    roles = {h: role_intervals(lines, until) for h, lines in views.hosts.items()}
    return [
        _hosts_check(views, roles, t_fault, old_master, new_master, switchover_expected, until),
        _leases_check(views, roles, until, lease_slack_s, majority_slack_s),
        _sip_check(calls, t_sw, old_master, switchover_expected, views.since, until,
                   sip_slack_s),
    ]
