"""Virtual ports (issue 4, item 3): VLANs 101 and 102 on every serving unit's bond, each a
VXLAN segment (VNI = VLAN id) with its own MAC and address, a SIP stack on each;
cutting one path leaves the other serving calls."""
from __future__ import annotations

from harness.faults import NetworkCut
from harness.faults_unit import unit_status
from harness.sipp import DockerExecutor, SippLoad, SippUas


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


def test_cutting_one_virtual_port_path_leaves_the_other_serving_calls(testbed, faults):
    faults.inject(NetworkCut(testbed, host="sipp-uac", nets=("vlan101",)))
    cut, other = run(testbed, load_on(testbed, 101, "vportcut101", calls=2, recv_timeout_s=2),
                     load_on(testbed, 102, "vportcut102"))
    assert not ok(cut), "a call went through the cut VLAN 101 path"
    assert len(ok(other)) == 4, [(c.call_id, c.outcome, c.final_code) for c in other]
