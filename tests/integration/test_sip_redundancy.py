"""SIP signalling redundancy, outgoing (issue 4, item 4): the route to the far end has two
addresses (sipp-uas .32, then .33); when the first does not answer or answers 503, the
unit tries the next one, and the call is answered there. Trunks: no HA at trunk level."""
from __future__ import annotations

import pytest

from harness.faults import HostPowerOff, NetworkCut, restore_placement, wait_for
from harness.sipp import SCENARIO_DIR, DockerExecutor, SippLoad, SippUas
from harness.testbed import log


@pytest.fixture(scope="module", autouse=True)
def original_placement(testbed):
    yield
    restore_placement(testbed)


def agents(tb, name, first_scenario=None):
    d = tb.dir / "sipp"
    uas_ex = DockerExecutor(tb.container("sipp-uas"), d, "/work")
    first = SippUas(uas_ex, tb.ip("sipp-uas", "voip"), name=f"{name}-uas1", control_port=8891,
                    **({"scenario": first_scenario} if first_scenario else {}))
    second = SippUas(uas_ex, tb.ip("sipp-uas-2", "voip"), name=f"{name}-uas2", control_port=8892,
                     media_port=6100)
    uac = SippLoad(DockerExecutor(tb.container("sipp-uac"), d, "/work"), f"{tb.ip('tmedia-1', 'voip')}:5060",
                   tb.ip("sipp-uac", "voip"), name=f"{name}-uac", rate=2, hold_s=1, calls=6)
    return first, second, uac


def mine(uas, uac):
    """The far-end legs of this load's calls (late retransmissions of an earlier test's
    INVITEs may reach a far end too)."""
    return [c for c in uas.calls() if uac.cid_tag in c.call_id]


def run(first, second, uac):
    with first, second:
        with uac:
            assert uac.wait(), "SIPp did not finish its calls in time"
        first.stop(grace_s=5)
        second.stop(grace_s=5)
    return uac.calls(far_end=second)


def test_the_unit_tries_the_next_address_when_the_first_does_not_answer(testbed, faults):
    first, second, uac = agents(testbed, "noanswer")
    faults.inject(NetworkCut(testbed, host="sipp-uas", own=(testbed.ip("sipp-uas", "voip"),)))
    calls = run(first, second, uac)
    bad = [(c.call_id, c.outcome, c.final_code, c.far_bye) for c in calls
           if c.outcome != "completed" or not c.far_bye]
    assert len(calls) == 6 and not bad, bad
    assert mine(first, uac) == [], "the cut first address received calls"
    setup = sorted(c.answer_t - c.invite_t for c in calls)
    log(f"route alternate after no answer: setup {setup[0]:.2f}..{setup[-1]:.2f} s")
    assert setup[0] >= 1.5, "answered before the first address could have timed out"


def test_the_unit_tries_the_next_address_on_503(testbed):
    first, second, uac = agents(testbed, "on503", first_scenario=SCENARIO_DIR / "uas_503.xml")
    calls = run(first, second, uac)
    bad = [(c.call_id, c.outcome, c.final_code, c.far_bye) for c in calls
           if c.outcome != "completed" or not c.far_bye]
    assert len(calls) == 6 and not bad, bad
    assert len(mine(first, uac)) == 6, "the first address did not see (and refuse) every call"
    setup = sorted(c.answer_t - c.invite_t for c in calls)
    log(f"route alternate after 503: setup {setup[0]:.3f}..{setup[-1]:.3f} s")
    assert setup[-1] < 1.5


def trunks(tb):
    return {(t["unit"], t["name"]): t["state"]
            for t in tb.oam(tb.master(), "/api/v1/trunks")["trunks"]}


def test_a_failed_unit_takes_its_own_trunks_down_and_they_do_not_move(testbed, faults):
    before = trunks(testbed)
    assert before and all(s in ("up", "disabled") for s in before.values()), before
    faults.inject(HostPowerOff(testbed, host="tmedia-2"))
    wait_for(lambda: all(s.startswith("down") for (u, _), s in trunks(testbed).items() if u == "tmedia-2"),
             15, "tmedia-2's trunks reported down")
    now = trunks(testbed)
    assert {k: v for k, v in now.items() if k[0] == "tmedia-1"} == \
        {k: v for k, v in before.items() if k[0] == "tmedia-1"}
    # the spare took tmedia-2's VoIP interface, not its trunks
    wait_for(lambda: testbed.oam(testbed.master(), "/api/v1/status")["services"]["tmedia-2"] == "tmedia-3",
             15, "tmedia-3 to serve tmedia-2")
    spare = testbed.oam(testbed.master(), "/api/v1/status")["units"]["tmedia-3"]["status"]
    assert spare["trunks"] == [], spare["trunks"]
