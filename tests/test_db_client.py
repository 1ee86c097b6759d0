"""The database client's failover (emulator/host/db.py) against fake servers that raise
the errors pymysql raises: refused connections, lost connections, read-only refusals.
A fake clock: no test sleeps."""
from __future__ import annotations

import pymysql
import pytest

from emulator.host import db as dbmod
import threading
import time

from emulator.host.db import PROBE_SQL, Db, _database_status_now, _StatusCache, is_read

A, B = "10.0.1.11", "10.0.1.12"


def refused(ip):
    exc = pymysql.err.OperationalError(2003, f"Can't connect to MySQL server on '{ip}' "
                                             "([Errno 111] Connection refused)")
    exc.original_exception = ConnectionRefusedError(111, "Connection refused")
    return exc


def lost():
    return pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")


class FakeServer:
    def __init__(self, ip, read_only, epoch=1, main=A):
        self.ip, self.read_only, self.epoch, self.main = ip, read_only, epoch, main
        self.up = True
        self.generation = 0          # a kill ends every connection of the old generation
        self.rows: list[str] = []    # what the writes left on this server
        self.executed: list[str] = []
        self.die_during_next = None  # "before" / "after": the next statement kills the server

    def kill(self):
        self.up = False
        self.generation += 1

    def start(self, read_only=True):
        self.up, self.read_only = True, read_only


class FakeCursor:
    def __init__(self, conn):
        self.conn, self.result = conn, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, args=None):
        srv = self.conn.srv
        if not self.conn.alive():
            raise lost()
        if sql == PROBE_SQL:
            self.result = [{"ro": int(srv.read_only), "epoch": srv.epoch, "main": srv.main}]
            return
        if srv.die_during_next:
            when, srv.die_during_next = srv.die_during_next, None
            if when == "after":
                srv.executed.append(sql)
                srv.rows.append(args[0] if args else sql)
            srv.kill()
            raise lost()
        if not is_read(sql):
            if srv.read_only:
                raise pymysql.err.OperationalError(1290, "The MariaDB server is running with "
                                                         "the --read-only option")
            if "dup" in sql:
                raise pymysql.err.IntegrityError(1062, "Duplicate entry")
            srv.rows.append(args[0] if args else sql)
        srv.executed.append(sql)
        self.result = [{"ip": srv.ip, "n": len(srv.rows)}]

    def fetchone(self):
        return self.result[0] if self.result else None

    def fetchall(self):
        return list(self.result)


class FakeConn:
    def __init__(self, srv):
        self.srv, self.generation, self.closed = srv, srv.generation, False
        self._read_timeout = 6.0

    def alive(self):
        return not self.closed and self.srv.up and self.srv.generation == self.generation

    def ping(self, reconnect=False):
        if not self.alive():
            raise lost()

    def cursor(self):
        return FakeCursor(self)

    def close(self):
        self.closed = True


class Net:
    """The fake network: connect() as pymysql.connect, a clock that sleep() advances, and
    hooks run at each sleep (what the database agents do meanwhile)."""

    def __init__(self, *servers):
        self.servers = {s.ip: s for s in servers}
        self.now = 0.0
        self.hooks = []
        self.connects = []

    def connect(self, host, **kw):
        self.connects.append(host)
        srv = self.servers[host]
        if not srv.up:
            raise refused(host)
        return FakeConn(srv)

    def clock(self):
        return self.now

    def sleep(self, dt):
        self.now += dt
        for hook in list(self.hooks):
            hook(self.now)

    def db(self, **kw):
        return Db([A, B], "pw", connect=self.connect, clock=self.clock, sleep=self.sleep, **kw)


@pytest.fixture
def pair():
    a, b = FakeServer(A, read_only=False), FakeServer(B, read_only=True)
    return a, b, Net(a, b)


def promote_at(t_promote, srv, epoch=2):
    """A hook: the backup's agent makes it the main at fake time t_promote."""
    def hook(now):
        if now >= t_promote and srv.read_only:
            srv.read_only, srv.epoch, srv.main = False, epoch, srv.ip
    return hook


def test_is_read():
    assert is_read("SELECT 1") and is_read("  (SELECT 1)") and is_read("show slave status")
    assert not is_read("INSERT INTO t VALUES (1) RETURNING id")
    assert not is_read("UPDATE t SET x = 1") and not is_read("DELETE FROM t")


def test_uses_the_writable_server_even_when_listed_second():
    a, b = FakeServer(A, read_only=True), FakeServer(B, read_only=False, epoch=2, main=B)
    net = Net(a, b)
    d = net.db()
    d.run("INSERT INTO t VALUES (%s)", ("x",))
    assert d.server == B and b.rows == ["x"] and a.rows == []


def test_keeps_its_connection_while_the_main_lives(pair):
    a, b, net = pair
    d = net.db()
    for i in range(5):
        d.run("INSERT INTO t VALUES (%s)", (i,))
    assert net.connects == [A, B]          # one selection, then the kept connection
    assert a.rows == [0, 1, 2, 3, 4]


def test_main_killed_between_statements_fails_over_to_the_promoted_backup(pair):
    a, b, net = pair
    d = net.db()
    d.run("INSERT INTO t VALUES (%s)", ("before",))
    a.kill()
    net.hooks.append(promote_at(0.3, b))       # the backup's agent promotes after 300 ms
    d.run("INSERT INTO t VALUES (%s)", ("after",))
    assert d.server == B
    assert a.rows == ["before"] and b.rows == ["after"]
    assert 0.3 <= net.now < 0.4                 # waited for the promotion, polling


def test_a_write_never_goes_to_a_read_only_replica(pair):
    a, b, net = pair
    d = net.db(failover_timeout=2.0)
    a.kill()                                    # and nobody promotes the backup
    with pytest.raises(pymysql.err.OperationalError) as err:
        d.run("INSERT INTO t VALUES (%s)", ("x",))
    assert err.value.args[0] == 2003 and "no main database server" in err.value.args[1]
    assert f"{B}: read-only" in err.value.args[1] and "refused" in err.value.args[1]
    assert b.rows == [] and b.executed == []
    assert net.now >= 2.0


def test_a_read_uses_the_replica_while_there_is_no_main(pair):
    a, b, net = pair
    d = net.db()
    a.kill()
    rows = d.run("SELECT x FROM t")
    assert rows[0]["ip"] == B and net.now == 0.0   # no wait for a promotion
    assert d.server is None                          # the replica is not taken for the main


def test_a_read_on_main_waits_for_the_main(pair):
    a, b, net = pair
    d = net.db()
    a.kill()
    net.hooks.append(promote_at(0.2, b))
    rows = d.run("SELECT x FROM t", on_main=True)
    assert rows[0]["ip"] == B and d.server == B and net.now >= 0.2


def test_a_write_refused_as_read_only_is_sent_again_to_the_new_main(pair):
    a, b, net = pair
    d = net.db()
    d.run("INSERT INTO t VALUES (%s)", ("first",))
    # a partition healed: b is the main of a newer epoch, a was demoted under our connection
    a.read_only = True
    b.read_only, b.epoch, b.main = False, 2, B
    d.run("INSERT INTO t VALUES (%s)", ("second",))
    assert a.rows == ["first"] and b.rows == ["second"]


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_write_whose_connection_dies_while_it_runs_is_not_repeated(pair, when):
    """Its outcome is unknown (the main may have committed it): the caller gets the
    error, and the write is not sent again to the new main (no duplicate)."""
    a, b, net = pair
    d = net.db()
    d.run("SELECT 1")
    a.die_during_next = when
    net.hooks.append(promote_at(0.1, b))
    with pytest.raises(pymysql.err.OperationalError) as err:
        d.run("INSERT INTO t VALUES (%s)", ("x",))
    assert err.value.args[0] == 2013
    assert b.executed == [] and b.rows == []
    d.run("INSERT INTO t VALUES (%s)", ("y",))     # the next one goes to the new main
    assert b.rows == ["y"]


def test_a_read_whose_connection_dies_while_it_runs_is_repeated(pair):
    a, b, net = pair
    d = net.db()
    d.run("SELECT 1")
    a.die_during_next = "before"
    net.hooks.append(promote_at(0.1, b))
    rows = d.run("SELECT x FROM t", on_main=True)
    assert rows[0]["ip"] == B


def test_an_sql_error_is_the_callers_and_keeps_the_connection(pair):
    a, b, net = pair
    d = net.db()
    d.run("SELECT 1")
    with pytest.raises(pymysql.err.IntegrityError):
        d.run("INSERT INTO dup VALUES (1)")
    d.run("SELECT 1")
    assert net.connects == [A, B] and d.server == A


def test_two_writable_servers_the_higher_epoch_wins():
    a = FakeServer(A, read_only=False, epoch=1, main=A)    # an isolated former main
    b = FakeServer(B, read_only=False, epoch=2, main=B)
    net = Net(a, b)
    d = net.db()
    d.run("INSERT INTO t VALUES (%s)", ("x",))
    assert d.server == B and b.rows == ["x"] and a.rows == []


def test_two_writable_servers_same_epoch_the_named_main_then_the_preferred_wins():
    a = FakeServer(A, read_only=False, epoch=3, main=B)
    b = FakeServer(B, read_only=False, epoch=3, main=B)
    d = Net(a, b).db()
    d.run("INSERT INTO t VALUES (%s)", ("x",))
    assert d.server == B
    a2 = FakeServer(A, read_only=False, epoch=3, main=None)
    b2 = FakeServer(B, read_only=False, epoch=3, main=None)
    d2 = Net(a2, b2).db()
    d2.run("INSERT INTO t VALUES (%s)", ("x",))
    assert d2.server == A


def test_nothing_reachable_fails_after_the_deadline_with_every_reason(pair):
    a, b, net = pair
    a.kill()
    b.kill()
    d = net.db(failover_timeout=1.0)
    with pytest.raises(pymysql.err.OperationalError) as err:
        d.run("SELECT 1")
    assert A in err.value.args[1] and B in err.value.args[1]
    assert 1.0 <= net.now < 1.1


def test_the_old_main_returning_as_replica_is_not_used(pair):
    a, b, net = pair
    d = net.db()
    a.kill()
    net.hooks.append(promote_at(0.05, b))
    d.run("INSERT INTO t VALUES (%s)", ("x",))
    a.start(read_only=True)                    # rejoins as a replica
    d.close()
    d.run("INSERT INTO t VALUES (%s)", ("y",))
    assert b.rows == ["x", "y"] and a.rows == []


def test_the_ping_gets_the_short_timeout_and_the_read_timeout_is_restored(pair):
    a, b, net = pair
    d = net.db()
    seen = []
    d.run("SELECT 1")
    conn = d.conn
    orig = conn.ping

    def ping(reconnect=False):
        seen.append(conn._read_timeout)
        return orig(reconnect)
    conn.ping = ping
    d.run("SELECT 1")
    assert seen == [1.0] and conn._read_timeout == 6.0


def test_database_status_names_the_writable_server_main(monkeypatch):
    def fake_status(ip, password, connect):
        ro = ip == A
        return {"ip": ip, "reachable": True, "read_only": int(ro), "epoch": 2, "epoch_main": B}

    monkeypatch.setattr(dbmod, "server_status", fake_status)

    class S:
        db_main, db_backup, db_password = A, B, "pw"
    st = _database_status_now(S())
    assert st["main"]["ip"] == B and st["main"]["role"] == "main"
    assert st["backup"]["ip"] == A and st["backup"]["role"] == "replica"


@pytest.mark.parametrize("named", [A, B])
def test_database_status_with_no_main_names_the_epochs_main_even_when_down(monkeypatch, named):
    """The main's MySQL is down and the replica not promoted yet: "main" is the server
    the newest epoch names (down), not the read-only replica."""
    def fake_status(ip, password, connect):
        if ip != named:
            return {"ip": ip, "reachable": True, "read_only": 1, "epoch": 2, "epoch_main": named}
        return {"ip": ip, "reachable": False}

    monkeypatch.setattr(dbmod, "server_status", fake_status)

    class S:
        db_main, db_backup, db_password = A, B, "pw"
    st = _database_status_now(S())
    assert st["main"]["ip"] == named and st["main"]["role"] == "down"
    assert st["backup"]["role"] == "replica"


def test_the_status_cache_answers_at_once_and_refreshes_in_the_background():
    calls, release = [], threading.Event()

    def fetch():
        calls.append(1)
        if len(calls) > 1:
            release.wait(5)          # a slow server: the second fetch hangs
        return {"n": len(calls)}

    cache = _StatusCache(fetch)
    assert cache.get(max_age=0.0) == {"n": 1}      # the first call waits for the servers
    assert cache.get(max_age=0.0) == {"n": 1}      # stale: served, a refresh starts
    assert cache.get(max_age=0.0) == {"n": 1}      # one refresh at a time
    release.set()
    end = time.monotonic() + 5
    while cache.get(max_age=60.0) != {"n": 2} and time.monotonic() < end:
        time.sleep(0.01)            # the background refresh lands (a real thread)
    assert cache.get(max_age=60.0) == {"n": 2} and len(calls) == 2
