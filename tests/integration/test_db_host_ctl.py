"""The host control tool on the running testbed (`python -m emulator.host.ctl` in a host
container): clear errors, init outliving its services, the Toolpack service quit and
started again, and a restarted host whose database rejoins."""
import time

from harness.faults import MysqlKill, ServiceQuit, ctl, wait_for
from harness.testbed import HOSTS

from .test_db_helpers import add_account, db_roles, delete_accounts, wait_same_rows

CTL = ["python", "-m", "emulator.host.ctl"]


def run_ctl(tb, host, *args):
    res = tb.container(host).exec_run(CTL + list(args), demux=True)
    out, err = (b.decode() if b else "" for b in res.output)
    return res.exit_code, out, err


def test_errors_are_one_line_with_a_nonzero_exit_code(testbed):
    code, out, err = run_ctl(testbed, "host-a", "mysql", "restart")
    assert code != 0 and out == "" and err.count("\n") == 1
    assert "mysql has no action 'restart'" in err
    code, out, err = run_ctl(testbed, "host-a", "service", "quit-now")
    assert code != 0 and err.count("\n") == 1


def test_init_outlives_a_killed_mysql_and_reports_it(testbed, faults):
    _, backup = db_roles(testbed)
    faults.inject(MysqlKill(testbed, host=backup))      # the replica's MySQL this time
    code, out, err = run_ctl(testbed, backup, "mysql", "kill")
    assert code == 1 and err == "error: mysql is not running\n"
    code, out, _ = run_ctl(testbed, backup, "mysql", "status")
    assert code == 0 and out == "mysql stopped\n"
    # the host is still up: its Toolpack service runs, its OAM answers
    assert testbed.container(backup).status == "running"
    assert ctl(testbed, backup, "service", "status")["data"]["running"]
    assert testbed.host_status(backup).ok
    # the main goes on without its replica (semi-sync falls back at once: no wait)
    main = "host-a" if backup == "host-b" else "host-b"
    t0 = time.monotonic()
    r = add_account(testbed, main, f"rk{int(time.time() * 1000) % 10**9}")
    assert r.status_code == 201 and time.monotonic() - t0 < 2.0, r.text
    faults.heal()
    assert run_ctl(testbed, backup, "mysql", "status")[1].startswith("mysql running")
    wait_same_rows(testbed)
    delete_accounts(testbed, main, [r.json()["name"]])


def test_service_quit_hands_over_and_start_rejoins_as_standby(testbed, faults):
    master = testbed.master()
    slave = next(h for h in HOSTS if h != master)
    fault = ServiceQuit(testbed, host=master)
    t_fault = faults.inject(fault)
    # ctl returned after the service exited: its applications are gone, the peer is active
    assert not ctl(testbed, master, "service", "status")["data"]["running"]
    assert not testbed.host_status(master, timeout=1).ok        # tboamapp stopped with it
    wait_for(lambda: testbed.roles()[slave] == "active", 10, f"{slave} active")
    switchover_s = time.time() - t_fault
    # MySQL on the quit host is untouched (a host whose service quit is still a DB server)
    assert ctl(testbed, master, "mysql", "status")["data"]["running"]
    fault.heal()
    assert testbed.roles() == {master: "standby", slave: "active"}
    assert fault.healed_at - t_fault < 60
    print(f"\nservice quit on {master}: {slave} active within {switchover_s:.2f} s (upper bound)")


def test_a_restarted_main_host_rejoins_as_replica(testbed, faults):
    main, backup = db_roles(testbed)
    c = testbed.container(main)
    c.restart(timeout=20)             # host shutdown and boot: init stops and starts all
    testbed.wait_healthy(120)
    wait_for(lambda: db_roles(testbed) == (backup, main), 10,
             f"{backup} the main and {main} its replica")
    wait_same_rows(testbed)
    code, out, _ = run_ctl(testbed, main, "mysql", "status")
    assert code == 0 and f"replica of {testbed.ip(backup)}" in out, out

