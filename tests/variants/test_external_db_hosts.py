"""The external-db variant on its testbed (two database hosts of their own, db-a main
and db-b backup): the Toolpack hosts run no server, a database host powered off is
replaced by the other, and a database host cut off from everything does not promote
itself. Collected only in a run of that variant (conftest.py); `make test` runs it."""
from __future__ import annotations

import time

import pytest

from harness.faults import HostPowerOff, NetworkCut, ctl, wait_for
from harness.testbed import DB_HOSTS, HOSTS
from harness.testbed import TestbedError as TbError

from integration.test_db_helpers import (account_names, add_account, db_roles, delete_accounts,
                                          record_result, wait_same_rows)


@pytest.fixture(autouse=True)
def _variant(testbed):
    assert testbed.db_hosts == DB_HOSTS, f"not the external-db variant: {testbed.variant!r}"


def agent_role(tb, host) -> str | None:
    try:
        return (ctl(tb, host, "mysql", "status")["data"].get("agent") or {}).get("role")
    except TbError:
        return None


def test_the_toolpack_hosts_run_no_database_server_and_say_where_it_is(testbed):
    for h in HOSTS:
        c = testbed.container(h)
        assert c.exec_run(["pgrep", "-x", "mariadbd"]).exit_code == 1, f"mariadbd runs on {h}"
        res = c.exec_run(["python", "-m", "emulator.host.ctl", "mysql", "status"])
        assert res.exit_code == 1
        assert (f"{h} runs no MySQL server: the configuration database is on "
                f"{testbed.ip('db-a')} (main) and {testbed.ip('db-b')} (backup)") in res.output.decode()
    for h in DB_HOSTS:
        assert testbed.container(h).exec_run(["pgrep", "-x", "mariadbd"]).exit_code == 0, h
    # and the hosts' applications use them: the gateway reads its configuration there
    st = testbed.host_status(testbed.master())
    assert st.data["gateway"]["db_server"] in (testbed.ip("db-a"), testbed.ip("db-b"))


def test_the_main_database_host_powered_off_the_backup_takes_over_and_writes_go_on(
        testbed, faults, run_dir):
    main, backup = db_roles(testbed)
    assert main in DB_HOSTS and backup in DB_HOSTS
    master = testbed.master()
    t_fault = faults.inject(HostPowerOff(testbed, host=main))
    # the backup's host hears its peer on neither control network and a Toolpack host
    # answers it: it promotes itself
    wait_for(lambda: agent_role(testbed, backup) == "main", 20, f"{backup}'s server promoted")
    promoted_s = time.time() - t_fault
    name = f"xdb{int(time.time() * 1000) % 10**9}"
    r = add_account(testbed, master, name)       # the OAM's client finds the new main itself
    write_s = time.time() - t_fault
    assert r.status_code == 201, r.text
    assert testbed.host_status(master).data["role"] == "active"     # no Toolpack switchover
    faults.heal()              # db-a back: re-cloned from the new main, replicating from it
    testbed.wait_healthy(120)
    assert db_roles(testbed) == (backup, main)
    # the write taken while it was down is on the returning server (its clone)
    wait_same_rows(testbed)
    assert name in account_names(testbed, main, "xdb")
    delete_accounts(testbed, master, [name])
    record_result(run_dir, "external_db_host_power_off", {"promoted_s": round(promoted_s, 3),
                                                          "first_write_s": round(write_s, 3)})


def test_a_database_host_cut_off_from_every_host_does_not_promote_itself(testbed, faults):
    """db-b cut off on both control networks hears neither db-a nor a Toolpack host: it
    cannot tell its peer's loss from its own isolation, and stays a replica (with no
    witness rule it would promote itself: two writable servers)."""
    main, backup = db_roles(testbed)
    faults.inject(NetworkCut(testbed, host=backup, nets=("ctrl-a", "ctrl-b")))
    # observed through docker exec (not blocked by the cut) for longer than a promotion
    # takes when the peer host is really lost (the test above: about 1 s)
    seen, end = set(), time.monotonic() + 8
    while time.monotonic() < end:
        seen.add(agent_role(testbed, backup))
        time.sleep(0.2)
    assert "main" not in seen, seen
    assert agent_role(testbed, main) == "main"
