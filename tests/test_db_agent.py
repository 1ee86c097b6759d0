"""The database role rule (emulator/host/db_agent.py `decide`), case by case: who becomes
the main, who re-clones, who waits. Pure function, no MariaDB."""
from __future__ import annotations

import pymysql
import pytest

from emulator.host.db_agent import (BECOME_MAIN, CLONE, DEMOTE, NOTHING, P_ERROR, P_MAIN,
                                    P_READONLY, P_REFUSED, P_UNREACHABLE, WAIT, Local, Peer,
                                    classify_connect_error, decide)

ME, PEER = "10.0.1.12", "10.0.1.11"      # this agent runs on the backup host (not preferred)


def act(local, peer, preferred=False, peer_host_lost=False):
    return decide(local, peer, ME, PEER, preferred, peer_host_lost)[0]


REPLICA = Local(read_only=True, epoch=1, epoch_main=PEER, master_host=PEER,
                io_running="Yes", sql_running="Yes")
REPLICA_RETRYING = Local(read_only=True, epoch=1, epoch_main=PEER, master_host=PEER,
                         io_running="Connecting", sql_running="Yes")
RESTARTED_REPLICA = Local(read_only=True, epoch=1, epoch_main=PEER, master_host=PEER,
                          io_running="No", sql_running="No")
FORMER_MAIN = Local(read_only=True, epoch=1, epoch_main=ME)    # restarted, not replicating
FRESH = Local(read_only=True)


def test_a_healthy_replica_of_the_main_does_nothing():
    assert act(REPLICA, Peer(P_MAIN, 1, PEER)) == NOTHING
    assert act(REPLICA_RETRYING, Peer(P_MAIN, 1, PEER)) == NOTHING


def test_a_replica_whose_io_thread_is_setting_up_its_session_is_not_recloned():
    """Seen after a clone: the next tick read "Preparing", re-cloned, and killed the I/O
    thread in its first request to the main (an ERROR in the log, caught by the matrix)."""
    preparing = Local(True, 1, PEER, PEER, "Preparing", "Yes")
    assert act(preparing, Peer(P_MAIN, 1, PEER)) == NOTHING
    assert act(preparing, Peer(P_REFUSED)) == BECOME_MAIN


@pytest.mark.parametrize("local", [FRESH, FORMER_MAIN, RESTARTED_REPLICA,
                                   Local(True, 1, PEER, PEER, "Yes", "No"),      # SQL error
                                   Local(True, 1, PEER, "10.9.9.9", "Yes", "Yes")])
def test_a_read_only_server_not_replicating_from_the_main_is_recloned(local):
    """Also the crashed former main: a binlog tail the new main never saw is thrown away."""
    assert act(local, Peer(P_MAIN, 2, PEER)) == CLONE


def test_the_replica_promotes_itself_when_the_main_refuses():
    assert act(REPLICA_RETRYING, Peer(P_REFUSED)) == BECOME_MAIN
    assert act(REPLICA, Peer(P_REFUSED)) == BECOME_MAIN


def test_an_unreachable_main_promotes_the_replica_only_when_the_peer_host_is_lost():
    assert act(REPLICA_RETRYING, Peer(P_UNREACHABLE)) == WAIT
    assert act(REPLICA_RETRYING, Peer(P_UNREACHABLE), peer_host_lost=True) == BECOME_MAIN


def test_a_restarted_replica_does_not_promote_stale_data():
    assert act(RESTARTED_REPLICA, Peer(P_REFUSED)) == WAIT
    assert act(RESTARTED_REPLICA, Peer(P_UNREACHABLE), peer_host_lost=True) == WAIT


def test_a_replica_with_a_broken_sql_thread_does_not_promote():
    assert act(Local(True, 1, PEER, PEER, "Connecting", "No"), Peer(P_REFUSED)) == WAIT


def test_the_former_main_resumes_when_its_replica_never_took_over():
    assert act(FORMER_MAIN, Peer(P_REFUSED)) == BECOME_MAIN
    assert act(FORMER_MAIN, Peer(P_UNREACHABLE)) == WAIT
    assert act(FORMER_MAIN, Peer(P_UNREACHABLE), peer_host_lost=True) == BECOME_MAIN


def test_both_read_only_the_epochs_named_main_wins_on_both_sides():
    # the main restarted before its replica promoted: it resumes, the replica waits
    assert act(REPLICA_RETRYING, Peer(P_READONLY, 1, PEER)) == WAIT
    assert decide(Local(True, 1, PEER), Peer(P_READONLY, 1, PEER), PEER, ME, True, False)[0] \
        == BECOME_MAIN


def test_both_fresh_the_preferred_server_bootstraps():
    assert act(FRESH, Peer(P_READONLY), preferred=True) == BECOME_MAIN
    assert act(FRESH, Peer(P_READONLY), preferred=False) == WAIT
    assert act(FRESH, Peer(P_REFUSED), preferred=True) == BECOME_MAIN
    assert act(FRESH, Peer(P_UNREACHABLE), preferred=True) == BECOME_MAIN
    assert act(FRESH, Peer(P_REFUSED), preferred=False) == WAIT


def test_a_server_with_data_beats_a_fresh_one():
    assert act(Local(True, 3, PEER), Peer(P_READONLY, 0, None), preferred=False) == BECOME_MAIN
    assert act(FRESH, Peer(P_READONLY, 3, ME), preferred=True) == WAIT


def test_the_main_stays_main_whatever_a_read_only_or_absent_peer_does():
    main = Local(read_only=False, epoch=2, epoch_main=ME)
    for peer in (Peer(P_READONLY, 2, ME), Peer(P_REFUSED), Peer(P_UNREACHABLE), Peer(P_ERROR)):
        assert act(main, peer) == NOTHING


def test_two_mains_after_a_partition_the_lower_epoch_demotes_itself():
    old = Local(read_only=False, epoch=1, epoch_main=ME)
    assert act(old, Peer(P_MAIN, 2, PEER)) == DEMOTE
    new = Local(read_only=False, epoch=2, epoch_main=ME)
    assert act(new, Peer(P_MAIN, 1, PEER)) == NOTHING


def test_two_mains_same_epoch_exactly_one_demotes():
    mine = Local(read_only=False, epoch=2, epoch_main=ME)
    a = decide(mine, Peer(P_MAIN, 2, PEER), ME, PEER, False, False)[0]
    theirs = Local(read_only=False, epoch=2, epoch_main=PEER)
    b = decide(theirs, Peer(P_MAIN, 2, ME), PEER, ME, True, False)[0]
    assert sorted([a, b]) == [DEMOTE, NOTHING]


def test_an_unexplained_peer_error_waits():
    assert act(REPLICA, Peer(P_ERROR, error="access denied")) == WAIT


def test_connect_errors_are_classified():
    exc = pymysql.err.OperationalError(2003, "Can't connect ([Errno 111] Connection refused)")
    exc.original_exception = ConnectionRefusedError(111, "Connection refused")
    assert classify_connect_error(exc) == P_REFUSED
    timeout = pymysql.err.OperationalError(2003, "Can't connect (timed out)")
    timeout.original_exception = TimeoutError("timed out")
    assert classify_connect_error(timeout) == P_UNREACHABLE
    assert classify_connect_error(pymysql.err.OperationalError(2013, "Lost")) == P_UNREACHABLE
    assert classify_connect_error(pymysql.err.OperationalError(1053, "shutdown")) == P_REFUSED
    assert classify_connect_error(pymysql.err.OperationalError(1045, "denied")) == P_ERROR


# ---- re-arming semi-sync on the main ---------------------------------------------------
def test_semi_sync_off_with_a_replica_connected_needs_a_heartbeat_commit():
    from emulator.host.db_agent import needs_rearm
    assert needs_rearm({"Rpl_semi_sync_master_status": "OFF", "Rpl_semi_sync_master_clients": "1"})
    assert not needs_rearm({"Rpl_semi_sync_master_status": "ON", "Rpl_semi_sync_master_clients": "1"})
    assert not needs_rearm({"Rpl_semi_sync_master_status": "OFF", "Rpl_semi_sync_master_clients": "0"})
    assert not needs_rearm({})


class FakeCursor:
    def __init__(self, status, log, procs=()):
        self.status, self.log, self.rows, self.procs = status, log, [], list(procs)

    def execute(self, sql, args=None):
        self.log.append(sql)
        self.rows = [{"Variable_name": k, "Value": v} for k, v in self.status.items()] \
            if sql.startswith("SHOW GLOBAL STATUS") else \
            self.procs if "PROCESSLIST" in sql else []

    def fetchall(self):
        return self.rows

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakeConn:
    def __init__(self, status, procs=()):
        self.status, self.log, self.procs = status, [], procs

    def cursor(self):
        return FakeCursor(self.status, self.log, self.procs)


ZOMBIE = {"ID": 154, "USER": "repl", "COMMAND": "Killed", "STATE": "Waiting to finalize termination",
          "TIME": 138}
DUMPING = {"ID": 389, "USER": "repl", "COMMAND": "Binlog Dump", "STATE": "starting", "TIME": 2}


def test_a_killed_dump_thread_that_does_not_end_is_a_zombie():
    from emulator.host.db_agent import zombie_dump_threads
    assert zombie_dump_threads([ZOMBIE, DUMPING]) == [154]
    assert zombie_dump_threads([{**ZOMBIE, "TIME": 1}]) == []          # ending right now
    assert zombie_dump_threads([{**ZOMBIE, "USER": "toolpack"}]) == []
    assert zombie_dump_threads([DUMPING]) == []


def test_the_main_restarts_semi_sync_when_a_killed_dump_thread_is_stuck(monkeypatch):
    """Found by the killed-run test in CI: after a cut of the backup's host healed, the
    main kept the old dump thread "Killed / Waiting to finalize termination" for minutes
    and refused each reconnect of the replica; semi-sync off and on freed it at once."""
    from emulator.host import db_agent
    agent = db_agent.DbAgent.__new__(db_agent.DbAgent)
    agent.next_rearm, agent.events = 0.0, []
    monkeypatch.setattr(agent, "event", lambda kind, msg: agent.events.append((kind, msg)))
    on = {"Rpl_semi_sync_master_status": "ON", "Rpl_semi_sync_master_clients": "0"}
    stuck = FakeConn(on, [ZOMBIE, DUMPING])
    agent.rearm_semi_sync(stuck)
    toggles = [q for q in stuck.log if "rpl_semi_sync_master_enabled" in q]
    assert toggles == ["SET GLOBAL rpl_semi_sync_master_enabled = OFF",
                       "SET GLOBAL rpl_semi_sync_master_enabled = ON"]
    assert agent.events and "[154]" in agent.events[0][1]
    agent.next_rearm = 0.0
    fine = FakeConn(on, [DUMPING])
    agent.rearm_semi_sync(fine)
    assert not [q for q in fine.log if "rpl_semi_sync_master_enabled" in q]


def test_the_main_writes_its_heartbeat_only_while_semi_sync_is_off_and_once_a_second(monkeypatch):
    """Found after a host's return in a benchmark: the backup replicated, caught up, and
    the main's semi-sync stayed off for good (no write came), so the testbed never got
    healthy again. The main's agent now commits a heartbeat then."""
    from emulator.host import db_agent
    agent = db_agent.DbAgent.__new__(db_agent.DbAgent)
    agent.next_rearm = 0.0
    clock = [100.0]
    monkeypatch.setattr(db_agent.time, "monotonic", lambda: clock[0])
    off = FakeConn({"Rpl_semi_sync_master_status": "OFF", "Rpl_semi_sync_master_clients": "1"})
    agent.rearm_semi_sync(off)
    assert any(sql.startswith("UPDATE toolpack_ha.epoch SET t") for sql in off.log)
    n = len(off.log)
    clock[0] += 0.5
    agent.rearm_semi_sync(off)                     # within the period: not even asked
    assert len(off.log) == n
    clock[0] += 0.6
    on = FakeConn({"Rpl_semi_sync_master_status": "ON", "Rpl_semi_sync_master_clients": "1"})
    agent.rearm_semi_sync(on)
    assert not any(sql.startswith("UPDATE") for sql in on.log)
