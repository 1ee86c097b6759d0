"""Virtual ports (issue 4, item 3): VLANs 101 and 102 on every serving unit's bond, each a
VXLAN segment (VNI = VLAN id) with its own MAC and address, a SIP stack on each;
cutting one path leaves the other serving calls. And incoming SIP signalling
redundancy (item 4): a caller configured with both SIP stacks' addresses reaches the
second when the first is unreachable."""
from __future__ import annotations

from harness.faults import NetworkCut, placement, unit_status
from harness.sipp import UAC_FAILOVER_XML, DockerExecutor, SippLoad, SippUas, failover_args
from harness.testbed import log


def vip(tb, node, vlan):
    return tb.ip(node, f"vlan{vlan}")


def load_on(tb, vlan, name, calls=4, recv_timeout_s=10.0):
    d = tb.dir / "sipp"
    return SippLoad(DockerExecutor(tb.container("sipp-uac"), d, "/work"), f"{vip(tb, 'tmedia-1', vlan)}:5060",
                    vip(tb, "sipp-uac", vlan), name=name, rate=4, hold_s=1, calls=calls,
                    recv_timeout_s=recv_timeout_s)


def run(tb, *loads):
    uas = SippUas(DockerExecutor(tb.container("sipp-uas"), tb.dir / "sipp", "/work"), tb.ip("sipp-uas", "voip"),
                  name=f"{loads[0].name}-uas")
    with uas:
        for load in loads:
            with load:
                assert load.wait(), "SIPp did not finish its calls in time"
        uas.stop(grace_s=5)
    return [load.calls(far_end=uas) for load in loads]


def ok(calls):
    return [c for c in calls if c.outcome == "completed" and c.far_bye]


def test_each_virtual_port_has_its_own_mac_and_address_and_a_sip_stack(testbed):
    s = unit_status(testbed, "tmedia-1")
    vports = {v["vlan"]: v for v in s["vports"]}
    assert set(vports) == {101, 102}
    macs = {v["mac"] for v in vports.values()} | {s["bond"]["mac"]}
    assert len(macs) == 3, f"the bond and its virtual ports share a MAC: {macs}"
    stacks = {st["stack"]: st for st in s["sip_stacks"]}
    assert set(stacks) == {"sip-0", "sip-vlan101", "sip-vlan102"}
    assert all(st["running"] and st["heartbeat"] for st in stacks.values()), stacks
    for vlan in (101, 102):
        calls, = run(testbed, load_on(testbed, vlan, f"vport{vlan}"))
        assert len(ok(calls)) == 4, [(c.call_id, c.outcome, c.final_code) for c in calls]


def test_the_segments_are_isolated(testbed):
    uac = testbed.container("sipp-uac")
    # VLAN 102's address is not reachable over VLAN 101's segment (and the reverse)
    for out, target in ((101, 102), (102, 101)):
        r = uac.exec_run(["ping", "-c", "2", "-W", "1", "-I", f"vx{out}", vip(testbed, "tmedia-1", target)])
        assert r.exit_code != 0, f"vx{out} reached VLAN {target}: {r.output.decode()}"
    for vlan in (101, 102):
        r = uac.exec_run(["ping", "-c", "1", "-W", "2", "-I", f"vx{vlan}", vip(testbed, "tmedia-1", vlan)])
        assert r.exit_code == 0, r.output.decode()


def cut_vlan101(tb):
    """VLAN 101 lost at the unit: whatever crosses its port vx101 is dropped, silently
    for the callers (a drop at the caller would fail its sendto at once instead)."""
    return NetworkCut(tb, host=placement(tb)["tmedia-1"], ifaces=("vx101",))


def test_cutting_one_virtual_port_path_leaves_the_other_serving_calls(testbed, faults):
    faults.inject(cut_vlan101(testbed))
    cut, other = run(testbed, load_on(testbed, 101, "vportcut101", calls=2, recv_timeout_s=2),
                     load_on(testbed, 102, "vportcut102"))
    assert not ok(cut), "a call went through the cut VLAN 101 path"
    assert len(ok(other)) == 4, [(c.call_id, c.outcome, c.final_code) for c in other]


def caller_with_both(tb, name):
    """sipp-uac (from its VoIP address) configured with tmedia-1's SIP stacks on VLAN 101,
    then VLAN 102."""
    return SippLoad(DockerExecutor(tb.container("sipp-uac"), tb.dir / "sipp", "/work"),
                    f"{vip(tb, 'tmedia-1', 101)}:5060", tb.ip("sipp-uac", "voip"), name=name,
                    rate=4, hold_s=1, calls=4, scenario=UAC_FAILOVER_XML,
                    extra_args=failover_args(vip(tb, "tmedia-1", 102)))


def test_a_caller_with_both_addresses_uses_the_first_while_it_answers(testbed):
    calls, = run(testbed, caller_with_both(testbed, "both-ok"))
    assert len(ok(calls)) == 4 and all(c.retries == 0 for c in calls), \
        [(c.call_id, c.outcome, c.retries) for c in calls]


def test_a_caller_with_both_addresses_reaches_the_second_when_the_first_is_cut(testbed, faults):
    faults.inject(cut_vlan101(testbed))
    calls, = run(testbed, caller_with_both(testbed, "both-cut"))
    assert len(ok(calls)) == 4 and all(c.retries == 1 for c in calls), \
        [(c.call_id, c.outcome, c.retries) for c in calls]
    setup = sorted(c.answer_t - c.invite_t for c in calls)
    log(f"incoming SIP redundancy: answered on the second address, setup {setup[0]:.2f}..{setup[-1]:.2f} s")
