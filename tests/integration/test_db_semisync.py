"""The semi-synchronous proof: writes go on through the OAM API while the main database's
MySQL is killed; afterwards every write the API acknowledged (201) is on the surviving
server (semi-sync AFTER_SYNC: the backup had it before the client was answered)."""
import secrets
import threading
import time

import httpx

from harness.faults import MysqlKill, wait_for

from .test_db_helpers import (account_names, db_roles, delete_accounts, oam_client,
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
