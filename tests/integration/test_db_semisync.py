"""The semi-synchronous proof: writes go on through the OAM API while the main database's
MySQL is killed; afterwards every write the API acknowledged (201) is on the surviving
server (semi-sync AFTER_SYNC: the backup had it before the client was answered)."""
import secrets
import threading
import time

import httpx

from harness.faults import HostPowerOff, MysqlKill, NetworkCut, restore_db_main, wait_for

from .test_db_helpers import (account_names, connect, db_roles, delete_accounts, oam_client,
                              record_result, semi_sync_counters, wait_same_rows)

BEFORE, AFTER = 50, 50      # acknowledged writes wanted before and after the kill
WRITERS = 4                 # concurrent writers: several commits in flight at the kill


class Writer(threading.Thread):
    """POST /api/v1/accounts one after the other, recording every outcome."""

    def __init__(self, tb, host: str, prefix: str):
        super().__init__(daemon=True)
        self.tb, self.host, self.prefix = tb, host, prefix
        self.results: list[dict] = []
        self.stop = threading.Event()

    def run(self):
        with oam_client(self.tb, self.host, timeout=20) as c:
            n = 0
            while not self.stop.is_set():
                name, t0 = f"{self.prefix}{n}", time.time()
                try:
                    r = c.post("/api/v1/accounts", json={"name": name, "enabled": True,
                                                         "max_calls": 1})
                    code, detail = r.status_code, "" if r.status_code == 201 else r.text[:200]
                except httpx.HTTPError as exc:
                    code, detail = None, repr(exc)
                self.results.append({"name": name, "code": code, "t0": t0, "t1": time.time(),
                                     "detail": detail})
                n += 1

    def acked(self, since: float = 0.0) -> int:
        return sum(1 for r in list(self.results) if r["code"] == 201 and r["t0"] >= since)


def test_every_write_acknowledged_during_the_kill_of_the_main_is_on_the_survivor(
        testbed, faults, run_dir):
    main, backup = db_roles(testbed)
    api = testbed.master()
    prefix = f"w{secrets.token_hex(3)}-"
    counters0 = semi_sync_counters(testbed, main)
    writers = [Writer(testbed, api, f"{prefix}{i}-") for i in range(WRITERS)]
    for w in writers:
        w.start()

    def n_acked(since=0.0):
        return sum(w.acked(since) for w in writers)
    try:
        wait_for(lambda: n_acked() >= BEFORE, 60, f"{BEFORE} acknowledged writes")
        counters1 = semi_sync_counters(testbed, main)   # just before the kill
        t_fault = faults.inject(MysqlKill(testbed, host=main))
        wait_for(lambda: n_acked(since=t_fault) >= AFTER, 60,
                 f"{AFTER} acknowledged writes after the kill")
    finally:
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(30)
    results = [r for w in writers for r in w.results]
    acked = {r["name"] for r in results if r["code"] == 201}
    failed = [r for r in results if r["code"] != 201]
    present = account_names(testbed, backup, prefix)        # on the surviving server
    missing = sorted(acked - present)
    unacked_present = sorted(present - acked)               # committed, answer lost
    in_flight = [r for r in results if r["t0"] <= t_fault <= r["t1"]]
    report = {
        "api_host": api, "writers": WRITERS, "killed_main": main, "survivor": backup,
        "writes": len(results), "acknowledged": len(acked),
        "acknowledged_present_on_survivor": len(acked & present),
        "present_on_survivor": len(present), "present_not_acknowledged": unacked_present,
        "failed": len(failed), "failed_codes": sorted({str(r["code"]) for r in failed}),
        "failed_window_s": (round(min(r["t0"] for r in failed) - t_fault, 3),
                            round(max(r["t1"] for r in failed) - t_fault, 3)) if failed else None,
        "in_flight_at_kill": [(r["name"], r["code"]) for r in in_flight],
        "slowest_acknowledged_write_s": round(max(r["t1"] - r["t0"] for r in results
                                                  if r["code"] == 201), 3),
        "semi_sync_before_kill": {
            "yes_tx": counters1.get("Rpl_semi_sync_master_yes_tx", 0)
            - counters0.get("Rpl_semi_sync_master_yes_tx", 0),
            "no_tx": counters1.get("Rpl_semi_sync_master_no_tx", 0)
            - counters0.get("Rpl_semi_sync_master_no_tx", 0)},
    }
    record_result(run_dir, "semi_sync_acknowledged_writes", report)
    # the writes before the kill were acknowledged by the backup (not asynchronous)
    assert report["semi_sync_before_kill"]["no_tx"] == 0, report
    assert report["semi_sync_before_kill"]["yes_tx"] >= BEFORE, report
    assert not missing, f"acknowledged but lost: {missing}"
    assert len(acked & present) == len(acked) >= BEFORE + AFTER

    # the old main rejoins and converges to the same rows (the acknowledged ones included)
    faults.heal()
    wait_same_rows(testbed)
    assert acked <= account_names(testbed, main, prefix)
    delete_accounts(testbed, api, present)


def master_status(tb, host: str, variable: str) -> str:
    conn = connect(tb, host)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE %s", (variable,))
            return cur.fetchone()[1]
    finally:
        conn.close()


def semi_sync_on(tb, host: str) -> bool:
    return master_status(tb, host, "Rpl_semi_sync_master_status") == "ON"


def semi_sync_clients(tb, host: str) -> int:
    return int(master_status(tb, host, "Rpl_semi_sync_master_clients"))


def test_semi_sync_is_back_on_after_the_backup_returns_even_with_no_write(testbed, faults):
    """MariaDB turns the main's semi-sync back on only when its dump thread sends a
    returning replica an event past the last asynchronous commit. A re-cloned backup
    starts at the main's last event, so with no write after its return the main stayed
    asynchronous for good, and the testbed never got healthy again (found by a
    benchmark after a chaos run). The main's database agent commits a heartbeat then.
    Here the backup's host goes silent, one write commits asynchronously, the host is
    powered off, comes back and is re-cloned, and nothing is written after that. Without the
    heartbeat: still off 60 s after the return (tried by hand)."""
    master = testbed.master()
    restore_db_main(testbed, master, master)       # the backup on the slave: no switchover
    main, backup = db_roles(testbed)
    # the backup connected and acknowledging: with no replica at all the main never waits
    # (wait_no_slave OFF) and its semi-sync stays on through the write below (CI caught
    # that, the backup still rejoining after the restore)
    wait_for(lambda: semi_sync_clients(testbed, main) >= 1 and semi_sync_on(testbed, main), 60,
             f"{backup} connected to {main} as a semi-sync replica")
    # The backup goes silent first, as a powered-off host looks to the main until TCP
    # notices: the write waits out the semi-sync timeout and the main turns asynchronous.
    # A bare docker kill closes the backup's sockets, and a main that has already seen its
    # only replica leave commits without waiting and stays ON (wait_no_slave OFF), which
    # made this test a race (CI: ON after the write).
    cut = NetworkCut(testbed, host=backup)
    faults.inject(cut)
    name = f"rearm{secrets.token_hex(4)}"
    conn = connect(testbed, main)
    try:
        with conn.cursor() as cur:     # no acknowledgement: committed after the timeout
            cur.execute("INSERT INTO accounts (name, enabled, max_calls) VALUES (%s, TRUE, 1)",
                        (name,))
    finally:
        conn.close()
    assert not semi_sync_on(testbed, main)
    off = HostPowerOff(testbed, host=backup)
    faults.inject(off)
    cut.heal()                         # the rules went with the killed container's namespace
    off.heal()
    t0 = time.monotonic()
    wait_for(lambda: semi_sync_on(testbed, main), 60, f"semi-sync on again on {main} with no write")
    print(f"\nsemi-sync on again {time.monotonic() - t0:.1f} s after {backup} came back")
    wait_for(lambda: name in account_names(testbed, backup, name), 10, "the row on the backup")
    delete_accounts(testbed, master, [name])


def io_running(tb, host: str) -> str:
    """The replica's IO thread state, asked inside its container (its networks may be cut)."""
    out = tb.container(host).exec_run(["mariadb", "-uroot", "-e", "SHOW SLAVE STATUS\\G"]).output
    line = next((x for x in out.decode().splitlines() if "Slave_IO_Running:" in x), None)
    assert line is not None, f"no replica status on {host}: {out.decode()[:300]}"
    return line.split(":", 1)[1].strip()


def stuck_dump_threads(tb, host: str) -> int:
    out = tb.container(host).exec_run(["mariadb", "-uroot", "-N", "-e",
                                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                        "WHERE USER = 'repl' AND COMMAND = 'Killed'"]).output
    return int(out.decode().strip() or 0)


def test_replication_resumes_after_short_cuts_of_the_backups_host(testbed, faults):
    """Found by the killed-run test in CI: after a cut of both control networks of the
    backup's host, healed a few seconds later, the main kept the replica's old dump
    thread "Killed / Waiting to finalize termination" for minutes and refused every
    reconnect (same server_id), so replication stayed down and the testbed unhealthy
    past make heal's deadline. The main's agent now restarts semi-sync master when a
    killed dump thread does not end, which frees it. Each cut lasts until the replica
    has noticed and tries to reconnect (IO thread Connecting), like the killed run's;
    then replication must be back, semi-synchronous, within 30 s, with writes going on
    through it all. A killed dump thread at the heal is common (it usually ends in a few
    seconds by itself); the one that lives for minutes is rarer and this test does not
    force it (tried by patching the remedy out: the test still passed): its remedy is
    tested in tests/test_db_agent.py, and was seen freeing a stuck main by hand."""
    master = testbed.master()
    restore_db_main(testbed, master, master)       # the backup on the slave: no switchover
    main, backup = db_roles(testbed)
    back_s, stuck = [], []
    writes = {"ok": 0, "failed": 0}
    stop = threading.Event()

    def write():          # commits in flight when each cut begins and ends
        conn = None
        while not stop.is_set():
            try:
                conn = conn or connect(testbed, main)
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO accounts (name, enabled, max_calls) VALUES (%s, TRUE, 1)",
                                (f"cut{secrets.token_hex(4)}",))
                writes["ok"] += 1
            except Exception:
                writes["failed"] += 1
                conn = None
            stop.wait(0.1)
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        _cut_and_heal(testbed, faults, main, backup, back_s, stuck)
    finally:
        stop.set()
        writer.join(10)
    print(f"\nhealthy again after each cut: {back_s} s; killed dump threads on {main} "
          f"at the heal: {stuck}; writes {writes}")
    conn = connect(testbed, main)
    try:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM accounts WHERE name LIKE 'cut%'")
    finally:
        conn.close()


def _cut_and_heal(testbed, faults, main, backup, back_s, stuck):
    for _ in range(4):
        cut = NetworkCut(testbed, host=backup, nets=("ctrl-a", "ctrl-b"))
        faults.inject(cut)
        wait_for(lambda: io_running(testbed, backup) == "Connecting", 20,
                 f"the replica on {backup} to notice the cut and try to reconnect")
        cut.heal()
        t0 = time.monotonic()
        stuck.append(stuck_dump_threads(testbed, main))
        wait_for(lambda: testbed.health()[0], 30, "replication back and semi-synchronous")
        back_s.append(round(time.monotonic() - t0, 1))
