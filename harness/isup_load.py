"""The ISUP side of a load on the ss7 variant, and its calls judged like SIP calls.

- `FarEnd`: one run of `python -m emulator.ss7.peer` in the ss7-peer container (the
  PSTN exchange), as SIPp runs in the agents: it places ISUP calls to the system at a
  rate (each held, then released by it) and answers the system's IAMs; its per-call
  trace and summary are read back when it ends.
- The far end's own calls (ISUP to SIP: each unit's interworking makes them INVITEs to
  its SIP stack, which routes them to sipp-uas) become `CallRecord`s (`isup_records`):
  IAM is the INVITE, ANM the 200, its REL the caller's BYE and the system's RLC that
  BYE's 200; a REL from the system is the network's BYE, or before the answer the final
  response RFC 3398 maps its cause to. The SIP leg at sipp-uas, named by the
  interworking's `X-Tb-Call: isup:<cic>:<IAM time>`, must have taken the BYE
  (`far_bye`), as for any SIP call.
- SIP calls to an ISUP trunk group (SIPp's uac_isup.xml: the called number is the
  unit's prefix and SIPp's call number) are found in the far end's trace by their
  called number (`join_sip_isup`): the far end must have taken the IAM and the REL of
  the caller's BYE, and answered it (RLC).

Each call's unit is the unit of its trunk group: a unit that fails takes its own
circuits' calls with it (the seed gives trunks no HA), and the matrix's unit rules
(lost on the failed unit, kept on the other) apply to them as to SIP calls.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time

from emulator.ss7.causes import sip_response

from . import verdict as vd
from .faults import unit_status
from .faults._units import board_of
from .oam import Oam
from .sipp import SCENARIO_DIR, CallRecord, SippUas
from .testbed import TestbedError
from .util import wait_for

# The SS7 configuration the variant seeds (compose/ss7.yml, TB_SEED_SS7) and the SS7
# operations expect: `prepare` checks it against the configuration database (the OAM)
# and says what differs rather than judging calls against another plan.
LINKSET, PC_SYS, PC_FAR = "pstn", 1001, 2002
GROUPS = {"tmedia-1": range(1, 31), "tmedia-2": range(31, 61)}   # in link order (SLC 0, 1)
GROUP_NAME = {"tmedia-1": "isup-1", "tmedia-2": "isup-2"}
SIP_IW_PORT = 5070                           # each unit's interworking (host/ss7_config.py)
ISUP_PREFIX = {"tmedia-1": "771", "tmedia-2": "772"}   # routes to each unit's trunk group
UAC_ISUP_XML = SCENARIO_DIR / "uac_isup.xml"
# The far end's T1 (REL repeated until RLC) longer than a silent link failure takes to be
# seen and changed over (about 3 s): with the tool's 0.5 s its REL went out again and
# again on the failing link, each copy was delivered after the changeover and answered
# with an RLC, and the second RLC met an idle circuit (an ISUP error the SS7 check counts,
# though MTP3 had duplicated nothing). Q.764's T1 is 15-60 s; T5 (then RSC) after it.
FAR_TIMERS = ("--t1", "5", "--t5", "60")
# the far end's and the system's IAM times of one call differ by less: an IAM sent on a
# link that fails silently waits for the changeover (the link's TCP timeout, about 3 s)
JOIN_S = 5.0


def is_isup(c: CallRecord) -> bool:
    """An ISUP leg: the far end's call, or a SIP call to a trunk group."""
    return c.call_id.startswith("isup-") or (c.called or "").startswith(tuple(ISUP_PREFIX.values()))


def group_of(cic: int) -> str | None:
    return next((u for u, cics in GROUPS.items() if cic in cics), None)


class FarEnd(threading.Thread):
    """One run of the far-end tool in the ss7-peer container; `result()` after it ends."""

    def __init__(self, tb, name: str, *args: str):
        super().__init__(daemon=True)
        self.tb, self.name = tb, name
        self.cmd = ["python", "-m", "emulator.ss7.peer", "--opc", str(PC_FAR),
                    "--dpc", str(PC_SYS), "--cics", "1-60",
                    "--link", f"connect:{tb.ip('tmedia-1', 'voip')}:3565",
                    "--link", f"connect:{tb.ip('tmedia-2', 'voip')}:3565",
                    "--trace", f"/tmp/{name}.jsonl", *args]
        self.summary: dict | None = None
        self.started_at: float | None = None     # when its run began (wall clock)
        self.calls: list[dict] = []
        self.output = ""

    def run(self):
        self.started_at = time.time()
        c = self.tb.container("ss7-peer")
        res = c.exec_run(self.cmd, demux=True)
        out, err = (x.decode(errors="replace") if x else "" for x in res.output)
        self.output = err[-2000:]
        try:
            self.summary = json.loads(out)
        except ValueError:
            return
        trace = c.exec_run(["cat", f"/tmp/{self.name}.jsonl"]).output.decode()
        self.calls = [json.loads(line) for line in trace.splitlines() if line.strip()]

    def quit(self) -> None:
        """Stop placing calls now (SIGTERM): the calls up get their hold time, then it
        writes its summary and ends (`result()`)."""
        if self.is_alive():
            self.tb.container("ss7-peer").exec_run(["pkill", "-TERM", "-f", f"/tmp/{self.name}.jsonl"])

    def stop(self) -> None:
        """Ends the far end's run early; an operation that failed must not leave it
        connected to the units' links."""
        if self.is_alive():
            self.quit()
            self.join(30)

    def result(self, timeout: float = 120) -> tuple[dict, list[dict]]:
        self.join(timeout)
        assert self.summary is not None, f"the far end gave no summary: {self.output}"
        return self.summary, self.calls


def isup_records(trace: list[dict], uas_legs: list[CallRecord]) -> tuple[list[CallRecord], dict]:
    """The far end's own calls as caller-side CallRecords (see the module docstring), and
    the unit of each. A call that lost a glare is left out: ISUP placed it again."""
    legs: dict[int, list[CallRecord]] = {}
    for leg in uas_legs:
        parts = (leg.orig or "").split(":")
        if len(parts) == 3 and parts[0] == "isup" and parts[1].isdigit():
            legs.setdefault(int(parts[1]), []).append(leg)
    out, unit_of = [], {}
    for r in trace:
        if r["direction"] != "out" or r["outcome"] == "glare":
            continue
        c = CallRecord(f"isup-{r['cic']}-{r['iam']:.3f}", "uac", invite_t=r["iam"],
                       called=r["called"])
        c.end_t = r["rlc"] or r["rel"] or r["anm"] or r["acm"] or r["iam"]
        if r["anm"] is not None:
            c.answer_t = c.final_t = r["anm"]
            c.final_code = 200
            if r["released_by"] == "peer":
                c.bye_sent_t = r["rel"]
                if r["rlc"] is not None:
                    c.bye_code, c.bye_ok_t = 200, r["rlc"]
            elif r["released_by"] == "system":
                c.peer_bye_t = r["rel"]
            near = sorted((abs(float(x.orig.split(":")[2]) - r["iam"]), i)
                          for i, x in enumerate(legs.get(r["cic"], [])))
            leg = legs[r["cic"]][near[0][1]] if near and near[0][0] < JOIN_S else None
            c.far_legs = 1 if leg else 0
            c.far_bye = leg is not None and leg.bye_sent_t is not None and leg.outcome == "completed"
            c.outcome = "completed" if c.bye_ok_t is not None else "dropped"
        elif r["released_by"] == "system" and r["cause"] is not None:
            c.final_code, c.final_reason = sip_response(r["cause"])
            c.final_t = r["rel"]
            c.outcome = "failed"
        else:       # released by the far end unanswered (its T7): no answer came
            c.abort = f"released by the far end unanswered (cause {r['cause']})"
        c.ended = c.outcome in ("completed", "failed", "dropped") or c.abort is not None
        out.append(c)
        unit_of[c.call_id] = group_of(r["cic"])
    return out, unit_of


def join_sip_isup(calls: list[CallRecord], trace: list[dict]) -> None:
    """SIP calls to an ISUP trunk group: `far_bye` from the far end's record of the call
    (its called number): the caller's BYE must have reached it as a REL it answered."""
    by_called = {r["called"]: r for r in trace if r["direction"] == "in"}
    for c in calls:
        r = by_called.get(c.called or "")
        c.far_legs = 1 if r else 0
        c.far_bye = r is not None and r["released_by"] == "system" and r["rlc"] is not None


# -- an SS7 operation's preparation and its SS7 sub-check ----------------------------------

def node(tb, unit: str) -> dict:
    """The SS7 node's status of the board serving `unit` ({} while none serves it)."""
    try:
        return unit_status(tb, board_of(tb, unit)).get("ss7") or {}
    except TestbedError:
        return {}


@contextlib.contextmanager
def answering(tb, name: str):
    """sipp-uas answering: the far end's IAMs become INVITEs (each unit's interworking to
    its SIP stack), which the gateway's default route sends there."""
    uas = SippUas(tb.sipp_executor("sipp-uas"), tb.ip("sipp-uas", "voip"), name=f"{name}-uas")
    with uas:
        yield uas
        uas.stop(grace_s=5)


def set_groups(tb, plan: dict) -> dict:
    """The trunk groups' CICs ({unit: (first, last)}) through the OAM, in an order that
    never makes two groups overlap, then a reload (its result is returned); waits until
    both units' nodes run them, one active and one standby."""
    oam = Oam.master(tb)
    ranges = {u: set(range(a, b + 1)) for u, (a, b) in plan.items()}
    cur = {g["unit"]: set(range(g["cic_first"], g["cic_last"] + 1))
           for g in oam.get("/ss7/config")["trunk_groups"]}
    # a group whose new range meets another group's current one goes last
    for u in sorted(plan, key=lambda u: any(ranges[u] & c for o, c in cur.items() if o != u)):
        oam.put(f"/ss7/trunk-groups/{GROUP_NAME[u]}",
                {"linkset": LINKSET, "unit": u, "cic_first": plan[u][0], "cic_last": plan[u][1]})
    result = oam.reload()
    want = set().union(*ranges.values())

    def running():
        sts = [node(tb, u) for u in plan]
        return all({int(k) for k in (st.get("isup") or {}).get("circuits") or {}} == want
                   and st.get("mate_connected") for st in sts) and \
            sorted(st.get("role") or "" for st in sts) == ["active", "standby"]
    wait_for(running, 60, f"both SS7 nodes running the trunk groups {plan}")
    return result


def expected_ss7() -> dict:
    """The SS7 configuration as the OAM shows it, when it is the one the operations expect."""
    return {"linksets": [{"name": LINKSET, "opc": PC_SYS, "dpc": PC_FAR,
                          "links": [{"slc": i, "unit": u} for i, u in enumerate(GROUPS)]}],
            "trunk_groups": [{"name": GROUP_NAME[u], "linkset": LINKSET, "unit": u,
                              "cic_first": c[0], "cic_last": c[-1]} for u, c in GROUPS.items()],
            "problem": None}


def ensure_routes(tb) -> None:
    """In every configuration: the SS7 configuration the operations expect (else a clear
    error), and each unit's prefix routed to its own ISUP trunk group, reloaded when a
    route was missing; they stay (the variant's routes)."""
    oam, changed = Oam.master(tb), False
    for cfg in oam.get("/configurations")["configurations"]:
        have = {k: v for k, v in oam.get("/ss7/config", config=cfg["name"]).items() if k != "config"}
        if have != expected_ss7():
            raise TestbedError(f"configuration {cfg['name']!r} has another SS7 configuration than "
                               f"the SS7 operations expect (compose/ss7.yml's TB_SEED_SS7): "
                               f"{have} (expected {expected_ss7()})")
        rows = oam.get("/routes", config=cfg["name"])["routes"]
        for unit, prefix in ISUP_PREFIX.items():
            if not any(r["prefix"] == prefix and r["trunk_group"] == GROUP_NAME[unit] for r in rows):
                oam.post("/routes", {"config": cfg["name"], "prefix": prefix,
                                     "trunk_group": GROUP_NAME[unit]})
                changed = True
    if changed:
        oam.reload()


def prepare(tb, isup_active: str, history=None) -> None:
    """Before the load: the routes to the trunk groups, and the active ISUP on
    `isup_active` (the operation's fault is aimed at a role). When the other unit's node
    is active, it is stopped (SIGTERM: it closes its links and mate connection), the
    wanted one takes over and the board starts the stopped one again as standby."""
    # an interrupted run's far end still connected to the links would take the new one's
    tb.container("ss7-peer").exec_run(["pkill", "-KILL", "-f", "emulator.ss7.peer"])
    ensure_routes(tb)
    other = next(u for u in GROUPS if u != isup_active)

    def roles():
        return node(tb, isup_active).get("role"), node(tb, other).get("role")

    def settled():
        a, b = node(tb, isup_active), node(tb, other)
        return a.get("mate_connected") and b.get("mate_connected") and \
            not (a.get("isup") or {}).get("groups_down") and \
            {a.get("role"), b.get("role")} == {"active", "standby"}
    wait_for(settled, 60, "the SS7 nodes: one active, one standby, both trunk groups up")
    if roles() != ("active", "standby"):
        st = node(tb, other)
        if history is not None:
            history.event("note", text=f"SS7: the active ISUP moved from {other} to {isup_active} "
                                       f"for the operation (node {st['pid']} stopped)")
        tb.container(board_of(tb, other)).exec_run(["kill", "-TERM", str(st["pid"])])
        wait_for(lambda: roles() == ("active", "standby") and settled(), 60,
                 f"{isup_active}'s SS7 node active, {other}'s back as standby")



def wait_links(tb, far: FarEnd) -> None:
    """Once the far end is started: both units' links in service (the far end aligns
    them, then places its calls), so the SIP calls to the trunk groups find them."""
    wait_for(lambda: not far.is_alive() or all(node(tb, u).get("link", {}).get("state") == "in_service"
                                               for u in GROUPS), 30, "both units' SS7 links in service")
    if not far.is_alive():
        far.result(0)       # its error


def changeover_after(tb, cut: str, t_fault: float) -> dict | None:
    """The active node's changeover of the cut unit's link after the fault (None: none):
    the link's traffic moved to the other link, with what it retrieved and discarded."""
    slc = list(GROUPS).index(cut)
    st = next((s for s in (node(tb, u) for u in GROUPS) if s.get("role") == "active"), {})
    return next((c for c in ((st.get("mtp3") or {}).get("changeovers") or [])
                 if c.get("slc") == slc and c.get("via") is not None
                 and (c.get("at") or 0) >= t_fault), None)


def ss7_check(tb, summary: dict, calls: list[CallRecord], sip_isup_ids: set, classes: dict,
              lost: frozenset, isup_active: str, t_fault: float, result: dict,
              link_cut: str | None = None):
    """The SS7 sub-check of an SS7 operation: the far end's ISUP saw no protocol error (a
    duplicate or an out-of-place message: what MTP3 losing, duplicating or misordering
    would show), and the figures of the ISUP legs across the fault."""
    legs = [c for c in calls if c.call_id.startswith("isup-") or c.call_id in sip_isup_ids]
    est = [c for c in legs if classes.get(c.call_id) == "established"]
    kept = [c for c in est if c.call_id not in lost]
    on_failed = [c for c in est if c.call_id in lost]
    active = {u: node(tb, u).get("role") for u in GROUPS}
    figures = {"isup_to_sip": sum(c.call_id.startswith("isup-") for c in legs),
               "sip_to_isup": len(legs) - sum(c.call_id.startswith("isup-") for c in legs),
               "established_at_fault": len(est), "kept": len(kept),
               "on_the_failed_units_trunks": len(on_failed),
               "isup_active_before": isup_active, "roles_after": active,
               "far_end": {k: summary.get(k) for k in ("placed", "answered", "failed", "glare",
                                                        "no_circuit", "incoming",
                                                        "incoming_answered", "causes")}}
    result["isup"] = figures
    problems = []
    if summary.get("isup_errors"):
        problems.append(f"the far end's ISUP saw protocol errors: {summary['isup_errors']}")
    if figures["isup_to_sip"] != summary.get("placed"):
        problems.append(f"the far end placed {summary.get('placed')} calls, {figures['isup_to_sip']} "
                        f"judged")
    if summary.get("no_circuit"):
        problems.append(f"the far end found no free circuit {summary['no_circuit']} times: the "
                        f"load's ISUP rate is too high for the circuits")
    if link_cut is not None:   # the fault's effect: MTP3 changed the link's traffic over
        co = changeover_after(tb, link_cut, t_fault)
        figures["changeover"] = co
        if co is None:
            problems.append(f"no changeover of {link_cut}'s link after the cut")
        elif co.get("discarded"):
            problems.append(f"the changeover discarded {co['discarded']} MSUs")
    if problems:
        return vd.failed("SS7", "; ".join(problems), **figures)
    if not legs:
        return vd.unknown("SS7", "no ISUP call in the load", **figures)
    co = figures.get("changeover")
    return vd.ok("SS7", f"{figures['isup_to_sip']} ISUP to SIP and {figures['sip_to_isup']} SIP to "
                        f"ISUP calls; {len(est)} up at the fault: {len(kept)} kept, "
                        f"{len(on_failed)} on the failed unit's trunks; no ISUP protocol error "
                        f"at the far end" + (f"; changeover of link {co['slc']} to {co['via']} by "
                                             f"{co['by']} {co['at'] - t_fault:.2f} s after the cut, "
                                             f"{co['retrieved']} MSUs retrieved, 0 discarded"
                                             if co else ""), **figures)
