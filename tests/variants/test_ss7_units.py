"""The ss7 variant on its testbed (compose/ss7.yml): tmedia-1 and tmedia-2 each end one
M2PA link of the linkset to ss7-peer, their boards run the units' SS7 nodes, and the
far-end tool runs in the ss7-peer container as SIPp runs in the agents. Collected only
in a run of that variant (conftest.py):

    make testbed-up VARIANT=ss7 PROJECT=tbss7
    TB_VARIANT=ss7 TB_PROJECT=tbss7 .venv/bin/python -m pytest tests/variants
"""
from __future__ import annotations

import contextlib

import pytest

from emulator.ss7 import isup
from harness.faults import UnitPowerOff, wait_for
from harness.faults._units import board_of
from harness.isup_load import GROUP_NAME, GROUPS, FarEnd, answering, node as ss7, set_groups
from harness.oam import Oam
from harness.sipp import DockerExecutor, SippLoad, SippUas

GROUP = GROUPS


@pytest.fixture(autouse=True)
def _variant(testbed):
    assert testbed.variant == "ss7", f"not the ss7 variant: {testbed.variant!r}"
    # a test before may have moved a unit and put it back (its board rebooted): wait for
    # both units' nodes, one active and one standby, talking to each other
    wait_for(lambda: sorted(ss7(testbed, u).get("role") or "" for u in GROUP) == ["active", "standby"]
             and all(ss7(testbed, u).get("mate_connected") for u in GROUP), 60,
             "the units' SS7 nodes: one active, one standby")


def test_each_unit_ends_one_link_and_calls_cross_both(testbed):
    # 30 calls up at once: the far end takes the 15 even CICs it controls in each group
    stack = contextlib.ExitStack()
    uas = stack.enter_context(answering(testbed, "both-links"))
    far = FarEnd(testbed, "both-links", "--mode", "call", "--rate", "10", "--duration", "4",
                 "--hold", "3")
    far.start()
    # the OAM's view while the far end runs: each link with the unit that ends it, in
    # service in MTP3 on both sides and carrying traffic; the three layers' instances on
    # the units the nodes' roles say; the 60 circuits with calls up on them
    def oam_in_service():
        v = testbed.oam(testbed.master(), "/api/v1/ss7")
        return v if (sorted(l["unit"] for l in v["links"]) == sorted(GROUP)
                     and all(l["state"] == l["mtp3_state"] == "in_service"
                             and (l["traffic_tx"] or 0) > 10 for l in v["links"])
                     and v["circuit_states"].get("answered", 0) >= 10) else None
    view = wait_for(oam_in_service, 30, "the OAM's SS7 view: both links in service with traffic")
    roles = {u: ss7(testbed, u).get("role") for u in GROUP}
    assert all(view["instances"][layer] == {
        "active": [u for u in GROUP if roles[u] == "active"],
        "standby": [u for u in GROUP if roles[u] == "standby"]}
        for layer in ("isup", "sccp", "tcap")), (view["instances"], roles)
    assert len(view["circuits"]) == 60
    summary, calls = far.result()
    stack.close()
    assert summary["failed"] == 0 and summary["answered"] == summary["placed"] >= 35, summary
    assert {c["cic"] in GROUP["tmedia-1"] for c in calls} == {True, False}   # both groups
    # each one answered by sipp-uas through its unit's interworking and SIP stack: the
    # far end's REL became the BYE that ended the SIP leg
    legs = uas.calls()
    assert len(legs) == len(calls) and all(c.outcome == "completed" for c in legs), \
        [(c.call_id, c.outcome) for c in legs]
    st = {u: ss7(testbed, u) for u in GROUP}
    assert {st[u]["role"] for u in GROUP} == {"active", "standby"}, st
    active = next(s for s in st.values() if s["role"] == "active")
    links = active["mtp3"]["links"]
    # both links carried the calls (load sharing by SLS: the CIC's 4 low bits)
    assert all(links[s]["traffic_rx"] > 10 and links[s]["traffic_tx"] > 10 for s in ("0", "1")), links


def test_the_active_units_board_powered_off_keeps_the_other_units_calls(testbed, faults):
    st = {u: ss7(testbed, u) for u in GROUP}
    active = next(u for u in GROUP if st[u].get("role") == "active")
    other = next(u for u in GROUP if u != active)
    faults_stack = contextlib.ExitStack()
    faults_stack.enter_context(answering(testbed, "power-off"))
    # and three TCAP dialogues begun at the start, continued 6 s later (after the fault,
    # which comes once 20 calls are up: about 3 s in) and ended 1 s after that
    far = FarEnd(testbed, "power-off", "--mode", "call", "--rate", "10", "--duration", "12",
                 "--hold", "3", "--tcap-dialogues", "3", "--tcap-continue-after", "6",
                 "--tcap-end-after", "1")
    far.start()
    wait_for(lambda: (ss7(testbed, active).get("isup") or {}).get("states", {}).get("answered", 0)
             >= 20, 20, "20 calls answered")
    t_fault = faults.inject(UnitPowerOff(testbed, host=board_of(testbed, active), serving=active))
    # (the status is the node's file as the active host last polled it: read until whole)
    took = wait_for(lambda: (lambda st: st if st.get("role") == "active" and st.get("takeovers")
                             and st["isup"]["groups_down"] == [active] else None)(ss7(testbed, other)),
                    10, f"{other} takes over, {active}'s trunk group down")
    # the OAM shows it: the other unit holds the three layers alone, the lost unit's
    # circuits down, its link gone with its board
    def oam_after_takeover():
        v = testbed.oam(testbed.master(), "/api/v1/ss7")
        lost = [v["circuits"].get(str(c), "") for c in GROUP[active]]
        return v if (v["instances"]["isup"]["active"] == [other] and v["groups_down"] == [active]
                     and all(x.startswith("down") or x.endswith("(down)") for x in lost)) else None
    view = wait_for(oam_after_takeover, 10, f"the OAM's SS7 view: {other} active, {active}'s group down")
    assert [l["unit"] for l in view["links"] if l["mtp3_state"] == "in_service"] == [other], view
    # the spare takes the unit (N+1) and its node joins as the standby: the group is up again
    wait_for(lambda: ss7(testbed, active).get("role") == "standby"
             and not ss7(testbed, other)["isup"]["groups_down"], 30,
             f"the board now serving {active}: its SS7 node standby, the group up again")
    summary, calls = far.result()
    faults_stack.close()

    def up_at(c, t):
        return c["anm"] is not None and c["anm"] < t and (c["rel"] or 1e18) > t
    kept = [c for c in calls if up_at(c, t_fault) and c["cic"] in GROUP[other]]
    cut = [c for c in calls if up_at(c, t_fault) and c["cic"] in GROUP[active]]
    assert kept and cut, (len(kept), len(cut))
    for c in kept:
        assert (c["outcome"], c["released_by"], c["cause"]) == ("answered", "peer", isup.NORMAL_CLEARING), c
    for c in cut:
        assert (c["released_by"], c["cause"]) == ("system", isup.TEMPORARY_FAILURE), c
    t_over = took["takeovers"][0]["t"]
    new = [c for c in calls if c["iam"] > t_over + 1.0]
    assert new and all(c["outcome"] == "answered" for c in new), new
    # until the spare brings the unit back (seconds later), only the other unit's circuits
    early = [c for c in new if c["iam"] < t_over + 2.0]
    assert early and all(c["cic"] in GROUP[other] for c in early), early
    assert not summary["isup_errors"], summary
    # the dialogues begun before the fault were continued and ended by the unit that took over
    assert len(summary["dialogues"]) == 3 and \
        all(d["result"] == "ended" for d in summary["dialogues"]), summary["dialogues"]
    assert t_fault < far.started_at + 6, "the fault came after the dialogues' Continue"
    first = min(c["anm"] for c in calls if c["iam"] > t_fault and c["anm"])
    print(f"ISUP takeover: unit powered off to the first new call answered "
          f"{first - t_fault:.3f} s; {len(kept)} calls kept, {len(cut)} on {active}'s "
          f"trunks released")    # the faults fixture heals: the board returns, units go home


def sip_calls_through(tb, unit: str, n: int, name: str, *, service: str = "1000",
                      uas: SippUas | None = None) -> list:
    """n SIP calls through `unit` to `service`, routed by the active gateway (to SIPp, or
    to an ISUP trunk group). `uas`: a SIPp far end already answering."""
    load = SippLoad(DockerExecutor(tb.container("sipp-uac"), tb.dir / "sipp", "/work"),
                    f"{tb.ip(unit, 'voip')}:5060", tb.ip("sipp-uac", "voip"),
                    rate=5, hold_s=1, calls=n, name=f"{name}-uac", service=service)
    with contextlib.ExitStack() as stack:
        if uas is None:
            uas = stack.enter_context(answering(tb, name))
        with load:
            assert load.wait(), "SIPp did not finish its calls in time"
    return load.calls()


@contextlib.contextmanager
def isup_route(tb, prefix: str, unit: str):
    """A gateway route from `prefix` to `unit`'s ISUP trunk group (by the group's name:
    the gateway sends its calls to the unit's interworking), reloaded; removed and
    reloaded after. (Not 77...: the SS7 operations' routes 771 and 772 stay in the
    configuration, and the longer prefix would win.)"""
    oam = Oam.master(tb)
    route = oam.post("/routes", {"prefix": prefix, "trunk_group": GROUP_NAME[unit]})
    try:
        oam.reload()
        yield
    finally:
        oam.delete(f"/routes/{route['id']}")
        oam.reload()


def links_in_service(tb) -> None:
    wait_for(lambda: all(l["mtp3_state"] == "in_service"
                         for l in tb.oam(tb.master(), "/api/v1/ss7")["links"]), 20,
             "both links in service in MTP3")


def test_sip_calls_routed_to_an_isup_trunk_group_become_isup_calls(testbed):
    """SIPp calls through tmedia-1 to prefix 78, routed to tmedia-2's trunk group: each
    becomes an IAM on one of tmedia-2's circuits (ACM 180, ANM 200), the caller's BYE a
    REL with cause 16 that the far end answers with RLC."""
    far = FarEnd(testbed, "sip-isup", "--mode", "answer", "--duration", "15", "--drain", "2")
    with isup_route(testbed, "78", "tmedia-2"):
        far.start()
        links_in_service(testbed)
        sip = sip_calls_through(testbed, "tmedia-1", 5, "sip-isup", service="7812345")
        iw = ss7(testbed, "tmedia-2").get("interworking") or {}
    _, calls = far.result()
    assert [c.outcome for c in sip] == ["completed"] * 5, \
        [(c.call_id, c.outcome, c.final_code, c.final_reason) for c in sip]
    assert len(calls) == 5, calls
    for c in calls:
        assert c["direction"] == "in" and c["called"] == "7812345" and c["cic"] in GROUP["tmedia-2"], c
        assert (c["outcome"], c["released_by"], c["cause"]) == ("answered", "system", isup.NORMAL_CLEARING), c
        assert c["acm"] and c["anm"] and c["rlc"], c
    assert iw.get("sip_isup", 0) >= 5 and iw.get("answered", 0) >= 5, iw


def test_the_ss7_stack_disabled_refuses_its_units_new_isup_calls_and_sip_calls_go_on(testbed):
    """The operator disables tmedia-2's SS7 stack and reloads: the far end's new calls on
    tmedia-2's circuits are released at once with cause 63, those on tmedia-1's answered;
    SIP calls routed to tmedia-2's trunk group get 503; SIP calls through tmedia-2 still
    complete. Enabled again: all answered. (The far end seizes the lowest circuit it
    controls first: 30 calls up at once fill tmedia-1's 15 and spill over onto
    tmedia-2's.)"""
    oam = Oam.master(testbed)
    stack = next(x for x in oam.get("/stacks")["stacks"]
                 if x["unit"] == "tmedia-2" and x["kind"] == "SS7")
    path = f"/stacks/tmedia-2/{stack['name']}"

    def refusing():
        active = next((st for st in (ss7(testbed, u) for u in GROUP) if st.get("role") == "active"), {})
        return (active.get("isup") or {}).get("refusing")
    with answering(testbed, "ss7-disabled") as uas, isup_route(testbed, "78", "tmedia-2"):
        try:
            oam.put(path, {"enabled": False})
            oam.reload()
            wait_for(lambda: refusing() == {"tmedia-2": isup.SERVICE_NOT_AVAILABLE}, 20,
                     "the active SS7 node refusing tmedia-2's trunk group")
            far = FarEnd(testbed, "ss7-disabled", "--mode", "both", "--rate", "20",
                         "--duration", "3", "--hold", "1.5")
            far.start()
            links_in_service(testbed)
            sip = sip_calls_through(testbed, "tmedia-2", 5, "ss7-disabled-sip", uas=uas)
            to_isup = sip_calls_through(testbed, "tmedia-1", 3, "ss7-disabled-isup",
                                        service="7800", uas=uas)
            _, calls = far.result()
            refused = [c for c in calls if c["cic"] in GROUP["tmedia-2"]]
            kept = [c for c in calls if c["cic"] in GROUP["tmedia-1"]]
            assert refused and kept, calls
            assert all(c["anm"] is None and c["cause"] == isup.SERVICE_NOT_AVAILABLE
                       and c["released_by"] == "system" for c in refused), \
                sorted({(c["cause"], c["released_by"], c["outcome"]) for c in refused}, key=str)
            assert all(c["outcome"] == "answered" for c in kept), kept
            assert [c.outcome for c in sip] == ["completed"] * 5, [(c.call_id, c.outcome) for c in sip]
            assert [(c.outcome, c.final_code) for c in to_isup] == [("failed", 503)] * 3, \
                [(c.call_id, c.outcome, c.final_code, c.final_reason) for c in to_isup]
            assert not [c for c in calls if c["direction"] == "in"], "an IAM left for a refused SIP call"
            assert oam.get("/ss7")["refusing"] == {"tmedia-2": isup.SERVICE_NOT_AVAILABLE}
        finally:
            oam.put(path, {"enabled": True})
            oam.reload()
        wait_for(lambda: refusing() == {}, 20, "tmedia-2's trunk group accepting again")
        far = FarEnd(testbed, "ss7-enabled", "--mode", "call", "--rate", "20", "--duration", "3",
                     "--hold", "1.5")
        far.start()
        summary, calls = far.result()
    assert {c["cic"] in GROUP["tmedia-1"] for c in calls} == {True, False}
    assert summary["failed"] == 0 and all(c["outcome"] == "answered" for c in calls), summary


def test_a_reload_that_changes_a_trunk_groups_cics_is_what_the_units_then_run(testbed):
    """The SS7 configuration lives in the configuration database: the operator shrinks
    tmedia-2's trunk group to CICs 31-40 through the OAM and reloads. The nodes restart
    with it: the far end's calls on CICs 41-60 are no circuit of the system any more (not
    answered; the active node counts them unequipped), those on 31-40 are answered.
    Restored and reloaded, 41-60 are answered again."""
    def calls_on(cics: str, name: str) -> dict:
        """The far end's summary of 6 calls (placed once its links are in service; a call
        to a CIC the system does not have never ends cleanly, so no trace line)."""
        far = FarEnd(testbed, name, "--mode", "call", "--rate", "10", "--calls", "6",
                     "--hold", "0.5", "--drain", "4", "--t7", "2", "--cics", cics)
        far.start()
        summary, _ = far.result()
        assert summary["placed"] == 6, (summary, far.output)
        return summary

    def unequipped() -> int:
        active = next((st for st in (ss7(testbed, u) for u in GROUP) if st.get("role") == "active"), {})
        return ((active.get("isup") or {}).get("errors") or {}).get("unequipped CIC", 0)

    seeded = {"tmedia-1": (1, 30), "tmedia-2": (31, 60)}
    with answering(testbed, "cics"):
        try:
            result = set_groups(testbed, dict(seeded, **{"tmedia-2": (31, 40)}))
            assert result["ss7"] == {"linkset": "pstn", "error": None}, result
            before = unequipped()
            gone = calls_on("41-60", "cics-gone")
            kept = calls_on("31-40", "cics-kept")
            assert gone["answered"] == 0, gone
            assert unequipped() > before
            assert kept["answered"] == 6 and not kept["isup_errors"], kept
        finally:
            set_groups(testbed, seeded)
        back = calls_on("41-60", "cics-back")
    assert back["answered"] == 6 and not back["isup_errors"], back
