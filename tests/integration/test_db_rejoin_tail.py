"""The trap of a crashed former main: it may hold a binlog tail the new main never saw.
Here the tail is made on purpose: the backup is cut off (its ctrl-a network, where the
database traffic runs), so after the semi-sync timeout the main commits a row
asynchronously; then the main's MySQL is killed and the cut healed, and the backup
becomes the main without that row. The old main, started again, must rejoin without it
(re-cloned), with replication running and both servers holding the same rows.

This also shows the documented price of the semi-sync timeout: the row was acknowledged
to its client (after waiting the timeout) and is lost."""
import secrets
import time

import pymysql

from harness.faults import MysqlKill, NetworkCut, wait_for

from .test_db_helpers import (account_names, connect, db_roles, record_result,
                              semi_sync_counters, wait_same_rows,
                              writable_main)


def test_a_crashed_main_rejoins_without_the_tail_the_new_main_never_saw(testbed, faults, run_dir):
    main, backup = db_roles(testbed)
    name = f"tail{secrets.token_hex(4)}"
    before = semi_sync_counters(testbed, main)
    cut = NetworkCut(testbed, host=backup, nets=("ctrl-a",))
    faults.inject(cut)
    conn = connect(testbed, main)
    try:
        with conn.cursor() as cur:
            t0 = time.monotonic()
            cur.execute("INSERT INTO accounts (name, enabled, max_calls) VALUES (%s, TRUE, 1)",
                        (name,))
            commit_s = time.monotonic() - t0
    finally:
        conn.close()
    after = semi_sync_counters(testbed, main)
    assert after["Rpl_semi_sync_master_no_tx"] - before["Rpl_semi_sync_master_no_tx"] >= 1
    assert name in account_names(testbed, main, name)

    kill = MysqlKill(testbed, host=main)
    faults.inject(kill)
    cut.heal()                       # the cut heals: the backup sees its main refused
    # promoted: writable (a view with no writable server still names a "main"), so the
    # old main, started next, finds a main of a newer epoch and is re-cloned from it
    wait_for(lambda: writable_main(testbed) == backup, 20, f"{backup} promoted")
    assert name not in account_names(testbed, backup, name)   # the tail never reached it

    kill.heal()                      # the old main starts, is re-cloned, replicates
    assert name not in account_names(testbed, main, name)     # its tail is gone
    sums = wait_same_rows(testbed)
    with connect(testbed, main) as c, c.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SHOW SLAVE STATUS")
        rep = cur.fetchone()
    assert rep["Slave_IO_Running"] == rep["Slave_SQL_Running"] == "Yes", rep
    assert rep["Master_Host"] == testbed.ip(backup) and not rep["Last_Error"]
    record_result(run_dir, "crashed_main_tail_discarded", {
        "old_main": main, "new_main": backup,
        "async_commit_after_semi_sync_timeout_s": round(commit_s, 2),
        "tail_row_lost_as_documented": True, "tables_equal": len(sums)})
