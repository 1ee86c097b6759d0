"""The unit-level operations of the matrix (the seed's TMedia promises) judged like the
host operations, per call, plus the effect each fault must have on the unit.

Calls (matrix field `unit: {target: <unit>, calls: lost|kept}`):

1. `lost`: the unit fails (powered off, both VoIP ports down, its SIP application
   crashed, no host polling it). Its calls set up before it recovered are lost, as on
   the real system: they may end in any way and are counted and reported as lost.
   Recovery = the first call answered through the unit's address among those set up
   after the first call since the fault that shows the unit down (it failed, or its
   answer waited more than SLOW_S: SIPp retransmitting until the spare or the rebooted
   unit answers), and that itself ended normally; a call answered in the instant
   before the unit really went down is no recovery. It must come within
   the operation's `max_switchover_s`, and every later call through the unit must be
   accepted.
2. `kept`: nothing of the unit's calls may be lost (a bond port, one control network,
   one voice path: signalling is untouched, media only where the path survives).
   `isup-lost` (the ss7 variant: the unit's SS7 process crashed): as `lost` for the
   calls on the unit's ISUP trunk group (both ways, harness/isup_load.py), recovered
   when one of them is answered again; as `kept` for its SIP calls.
3. Calls through the other unit are always kept.

Effects (`effect_check`), seen on the unit's own file system or on the wire where the
system's API would only repeat what it was told: a reboot (with its reason) from the
board's boot record; the spare serving the unit and not carrying the failed unit's
trunks; a bond failover announced on the new port; new calls' media only on the
surviving voice path.
"""
from __future__ import annotations

import time

from . import verdict as vd
from .isup_load import is_isup
from .probes import boot_record
from .testbed import TestbedError
from .util import wait_for

LOST_KINDS = ("unit_power_off", "voip_ports_down", "unit_app_crash", "unit_unpolled")


SLOW_S = 1.0     # an answer this late waited for the unit (SIPp retransmitting the INVITE)


def _down_evidence(c) -> bool:
    """The call shows the unit not serving: it failed, or its answer waited."""
    return not (c.outcome == "completed" and c.far_bye is not False) or \
        (c.answer_t is not None and c.answer_t - c.invite_t > SLOW_S)


def _first_answered(calls, unit_of: dict, unit: str, t_fault: float):
    """The recovering call: the first call through `unit` answered among those set up
    after the first call since the fault that shows the unit down (failed, or answered
    only after waiting): a call answered in the instant before the unit really went down
    is no recovery. With no such call, the first answered at all."""
    mine = [c for c in calls if unit_of.get(c.call_id) == unit and c.invite_t >= t_fault]
    down = min((c.invite_t for c in mine if _down_evidence(c)), default=None)
    # a call the dying unit answered but could not end (its BYE then met the spare:
    # 481) is no recovery either: the recovering call ends normally at both ends
    return min((c for c in mine if c.answer_t is not None and not _down_evidence(c)
                and (down is None or c.invite_t > down)),
               key=lambda c: c.answer_t, default=None)


def recovery(calls, unit_of: dict, unit: str, t_fault: float) -> float | None:
    """Answer time of the first call through `unit` set up after the fault (rule 1)."""
    first = _first_answered(calls, unit_of, unit, t_fault)
    return first.answer_t if first else None


def lost_ok(calls, unit_of: dict, unit: str, t_fault: float, policy: str) -> frozenset:
    """Call-IDs the system may lose (rule 1); none under `kept` (rule 2)."""
    if policy not in ("lost", "isup-lost"):
        return frozenset()
    if policy == "isup-lost":     # its ISUP side failed: recovered when an ISUP call is answered
        calls = [c for c in calls if is_isup(c)]
    first = _first_answered(calls, unit_of, unit, t_fault)
    return frozenset(c.call_id for c in calls if unit_of.get(c.call_id) == unit
                     and (first is None or c.invite_t < first.invite_t))


def recovery_check(calls, unit_of, unit: str, t_fault: float, policy: str,
                   bound_s: float) -> vd.SubCheck:
    t_rec = recovery(calls, unit_of, unit, t_fault)
    mine = [c for c in calls if unit_of.get(c.call_id) == unit and c.invite_t >= t_fault]
    if not mine:
        return vd.unknown("unit recovery", f"no call through {unit} after the fault")
    if t_rec is None:
        return vd.failed("unit recovery", f"no call through {unit} was answered after the fault "
                                          f"({len(mine)} placed)")
    took = t_rec - t_fault
    data = {"recovery_s": round(took, 3), "bound_s": bound_s}
    if policy == "lost" and took > bound_s:
        return vd.failed("unit recovery", f"{unit} answered again {took:.2f} s after the fault "
                                          f"> {bound_s} s", **data)
    return vd.ok("unit recovery", f"{unit} answered a new call {took:.2f} s after the fault", **data)


def before_fault(tb, unit: str) -> dict:
    """What effect_check compares with: the board serving `unit`, every board's boot
    record, the placement and the bond (as the active host holds them)."""
    st = tb.oam(tb.master(), "/api/v1/status")
    board = st["services"].get(unit) or unit
    boots = {}
    for b in st["units"]:
        try:
            boots[b] = boot_record(tb, b)
        except Exception:      # a board that is down has no record to read now
            boots[b] = None
    return {"board": board, "boots": boots, "status": st["units"], "services": st["services"]}


def wait_effect(tb, kind: str, unit: str, before: dict, t_fault: float, extra: dict,
                deadline_s: float) -> vd.SubCheck:
    """effect_check once it holds, or its last answer `deadline_s` after the fault: read
    before the heal, the effect may still be on its way (a watchdog reboot comes its
    timeout after the fault, about as late as the window after it ends)."""
    last = []

    def held() -> bool:
        last[:] = [effect_check(tb, kind, unit, before, t_fault, extra)]
        return last[0].status == "ok"
    try:
        wait_for(held, t_fault + deadline_s - time.time(), "the unit effect", interval=0.25)
    except TestbedError:
        pass           # the last answer says what was missing
    return last[0]


def _reboots_since(rec_before: dict | None, rec_after: dict | None, t: float) -> list[dict]:
    if not rec_after:
        return []
    return [r for r in rec_after.get("reboots", []) if r.get("at", 0) >= t]


def effect_check(tb, kind: str, unit: str, before: dict, t_fault: float, extra: dict) -> vd.SubCheck:
    """The effect the fault kind must have had (module docstring): read before the heal
    where the heal overlaps the load's hold (scenario.HEAL_EARLY_UNIT_KINDS), else after
    the load (a capture's findings are in `extra` only once it has stopped)."""
    name = "unit effect"
    board = before["board"]
    try:
        rec = boot_record(tb, board)
    except Exception as exc:
        rec, rec_error = None, str(exc)
    else:
        rec_error = None
    reboots = _reboots_since(before["boots"].get(board), rec, t_fault)
    if kind in ("unit_app_crash", "unit_unpolled"):
        if rec is None:
            return vd.unknown(name, f"{board}: boot record unreadable ({rec_error})")
        want = "watchdog" if kind == "unit_unpolled" else ""
        hit = [r for r in reboots if r.get("reason", "").startswith(want)] if want else reboots
        if not hit:
            return vd.failed(name, f"{board} did not reboot {'by its watchdog ' if want else ''}"
                                   f"after the fault (reboots since: {reboots})")
        return vd.ok(name, f"{board} rebooted {hit[0]['at'] - t_fault:.2f} s after the fault: "
                           f"{hit[0].get('reason')}", reboot_after_s=round(hit[0]["at"] - t_fault, 2))
    if kind == "unit_ctrl_cut":
        if reboots:
            return vd.failed(name, f"{board} rebooted on losing one control network: {reboots}")
        return vd.ok(name, f"{board} kept running (no reboot) with one control network")
    if kind in ("unit_power_off", "voip_ports_down"):
        st = tb.oam(tb.master(), "/api/v1/status")
        now = st["services"].get(unit)
        if now in (None, board):
            return vd.failed(name, f"{unit} still served by {now} after its board {board} failed")
        spare = (st["units"].get(now) or {}).get("status") or {}
        theirs = {t["name"] for t in (before["status"].get(board, {}).get("status") or {}).get("trunks", [])}
        carried = sorted(theirs & {t["name"] for t in spare.get("trunks", [])})
        if carried:
            return vd.failed(name, f"{now} took over {unit} and also the trunks {carried} of "
                                   f"{board}: trunks have no HA, they must go down with it")
        return vd.ok(name, f"{unit} moved from {board} to {now}; {board}'s trunks "
                           f"{sorted(theirs)} did not move")
    if kind in ("bond_port_down", "bond_port_silent"):
        missing = extra.get("garp_missing")
        if missing is None:
            return vd.unknown(name, "no capture of the new port")
        if missing:
            return vd.failed(name, f"no gratuitous ARP on the new port {extra.get('new_port')} "
                                   f"for {missing}")
        return vd.ok(name, f"gratuitous ARP on {extra.get('new_port')} for every address")
    if kind == "voice_path_cut":
        on_lost, on_other = extra.get("new_on_lost"), extra.get("new_on_other")
        new = extra.get("new_calls")
        if on_lost is None or new is None:
            return vd.unknown(name, "no media capture of the voice paths")
        if not new:
            return vd.unknown(name, "no new call through the unit after the path was lost")
        if on_lost:
            return vd.failed(name, f"{on_lost} new calls' media on the lost path")
        if on_other < new:
            return vd.failed(name, f"{new} new calls through {unit}, only {on_other} with media on "
                                   f"the surviving path: the others went to the lost one")
        return vd.ok(name, f"{new} new calls, {on_other} media streams on the surviving path, "
                           f"none on the lost one")
    return vd.na(name, f"no unit effect defined for {kind}")
