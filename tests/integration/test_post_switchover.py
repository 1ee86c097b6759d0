"""The seed's post-switchover checks (harness/post_checks.py) after a real switchover: the
master's gateway is killed while calls are established; the new master must pass every
check, the calls from before the fault included."""
from harness import post_checks
from harness.faults import KillProcess, wait_for
from harness.oam import Oam


def test_every_post_switchover_check_passes_after_the_master_gateway_is_killed(testbed, faults):
    master, slave = testbed.master(), testbed.slave()
    prepared = post_checks.prepare(testbed)
    try:
        faults.inject(KillProcess(testbed, host=master, app="gateway"))
        wait_for(lambda: testbed.roles() == {master: "standby", slave: "active"}, 15,
                 f"{slave} active and {master} standby")
    except BaseException:
        prepared.finish(Oam.master(testbed))
        raise
    results = post_checks.run_all(testbed, prepared)
    assert [r.name for r in results] == [name for name, _ in post_checks.CHECKS]
    failed = [f"{r.name}: {r.detail}" for r in results if not r.ok]
    assert not failed, failed
    assert Oam(testbed, slave).get("/status")["role"] == "active"   # the checks ran on the new master
