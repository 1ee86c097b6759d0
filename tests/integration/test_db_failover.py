"""The seed's MySQL operations on the main database server (kill, shutdown): every
application switches to the backup, which becomes the main; the old main, started again,
rejoins as a replica of the new main and both servers end up holding the same rows."""
import time

import pytest

from harness.faults import MysqlKill, MysqlShutdown, wait_for
from harness.testbed import HOSTS

from .test_db_helpers import (Probe, add_account, db_roles, delete_accounts, failover_times,
                              gateway_db_server, record_result, wait_same_rows)


@pytest.mark.parametrize("fault_cls", [MysqlKill, MysqlShutdown], ids=["kill", "shutdown"])
def test_main_mysql_lost_applications_switch_and_the_old_main_rejoins(testbed, faults, run_dir,
                                                                    fault_cls):
    main, backup = db_roles(testbed)
    main_ip, backup_ip = testbed.ip(main), testbed.ip(backup)
    for h in HOSTS:
        wait_for(lambda: gateway_db_server(testbed, h) == main_ip, 20,
                 f"the gateway of {h} on the main database {main_ip}")
    # the applications' own client, asking for the main every 50 ms on both hosts
    probes = {h: Probe(testbed, h, seconds=12).start() for h in HOSTS}

    fault = fault_cls(testbed, host=main)
    t_fault = faults.inject(fault)

    # every application switches: the gateways (status db_server), and the OAM writes
    for h in HOSTS:
        wait_for(lambda: gateway_db_server(testbed, h) == backup_ip, 20,
                 f"the gateway of {h} on the backup database {backup_ip}")
    master = testbed.master()
    names = [f"fo{int(time.time() * 1000) % 10**9}a", f"fo{int(time.time() * 1000) % 10**9}b"]
    r = add_account(testbed, master, names[0])
    assert r.status_code == 201, r.text
    # the OAM's database status, a view checked now (its cache may hold an older one)
    db = wait_for(lambda: (d := testbed.db_view())
                  ["main"]["ip"] == backup_ip and d["main"]["read_only"] == 0 and d, 10,
                  "the OAM naming the new main")
    assert not db["backup"]["reachable"]
    times = {h: failover_times(p.join(), t_fault, backup_ip) for h, p in probes.items()}
    for h, t in times.items():
        assert t["new_main_seen"], (h, t)

    # the old main comes back: a replica of the new main (re-cloned), replication running
    t_heal = time.time()
    fault.heal()
    db = wait_for(lambda: (d := testbed.db_view())["backup"]["reachable"] and d, 10,
                  "the OAM seeing the rejoined server")
    assert db["main"]["ip"] == backup_ip
    rep = db["backup"]["replica"]
    assert db["backup"]["ip"] == main_ip and db["backup"]["read_only"] == 1
    assert rep["master_host"] == backup_ip and rep["io_running"] == rep["sql_running"] == "Yes"
    # a write after the rejoin reaches it too; then both servers hold the same rows
    r = add_account(testbed, master, names[1])
    assert r.status_code == 201, r.text
    sums = wait_same_rows(testbed)
    assert "accounts" in sums and "routes" in sums
    rejoin_s = fault.healed_at - t_heal
    delete_accounts(testbed, master, names)
    record_result(run_dir, f"mysql_{fault.action}_on_main", {
        "main": main, "new_main": backup, "query_failover": times,
        "start_to_rejoined_and_healthy_s": round(rejoin_s, 1),
        "tables_compared": sorted(sums)})
