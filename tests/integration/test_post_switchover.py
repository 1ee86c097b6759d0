"""The seed's post-switchover checks (harness/post_checks.py) after a real switchover: the
master's gateway is killed while calls are established; the new master must pass every
check, the calls from before the fault included; the slave (the old master) is up, so
every check applies. Then the logs of every host and unit since the test began: no error,
and the switchover's own events (handover, lease released, gateway restarted) there."""
import time

from harness import logscan, post_checks
from harness.faults import KillProcess, wait_for
from harness.oam import Oam


def test_every_post_switchover_check_passes_after_the_master_gateway_is_killed(testbed, faults):
    since = time.time()
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
    not_ok = [f"{r.name}: {r.status}: {r.detail}" for r in results if r.status != "ok"]
    assert not not_ok, not_ok
    assert post_checks.subcheck(results).status == "ok"
    assert Oam(testbed, slave).get("/status")["role"] == "active"   # the checks ran on the new master
    logs = logscan.scan(testbed, since, expect=logscan.expected("kill_process", app="gateway")
                        + logscan.switchover_events(graceful=True))
    assert logs.status == "ok", logs.detail


def test_the_configuration_checks_after_a_mysql_operation_pass_on_a_healthy_testbed(testbed):
    results = post_checks.run_config_checks(testbed)
    assert [r.name for r in results] == [name for name, _ in post_checks.CONFIG_CHECKS]
    assert all(r.ok for r in results), [(r.name, r.detail) for r in results if not r.ok]


def test_run_dont_run_is_not_applicable_while_the_slave_is_down(testbed, faults):
    from harness.faults import HostPowerOff
    slave = testbed.slave()
    faults.inject(HostPowerOff(testbed, host=slave))
    checks = post_checks.Checks(testbed, post_checks.Prepared(testbed), Oam.master(testbed))
    try:
        checks.application_run_state()
    except post_checks.NotApplicable as exc:
        assert f"{slave} is down" in str(exc)
    else:
        raise AssertionError("Run / Don't Run ran against a slave that is powered off")
