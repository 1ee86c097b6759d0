"""The database agent: a thread of the host's init that decides the role of the host's own
MariaDB server (main or replica) and carries it out. Each agent acts on its own server
only; the applications never change a server's role (their user has no admin rights).

The rule (`decide`, pure and unit-tested):

* The main is the writable server (`@@read_only = 0`). Every server starts read-only and
  is made writable only by its agent; a replica is always read-only.
* `toolpack_ha.epoch` (one replicated row: epoch number, IP of that epoch's main) orders
  the mains: whoever makes its server the main in a new epoch writes epoch+1 naming
  itself. Two writable servers (only after a partition healed) resolve to the higher
  (epoch, named main, preferred) key; the other demotes itself. Clients use the same key.
* A read-only server whose peer is the main replicates from it. If it does not already
  replicate from that main, it is re-cloned from it (dump of `toolpack` and
  `toolpack_ha` with the GTID position, after RESET MASTER): a crashed former main may
  hold a binlog tail the new main never saw, and the clone throws that tail away.
* Promotion: a replica that was replicating (IO thread Yes/Connecting/Preparing, SQL Yes)
  becomes the main when its main's server refuses connections (the peer host is up and
  its MySQL is down), or is unreachable while the peer *host* is lost: this host is the
  active Toolpack host and its sys_manager hears the peer on no control path (the HA
  rule of election.py: the peer is dead or cut off, not merely one path); on a
  database host of its own (two external hosts, db_host.py) when the peer host answers
  on none of its control addresses and a Toolpack host answers (db_host_peer_lost). It
  first applies every event it received (semi-sync AFTER_SYNC: every acknowledged commit
  is among them), then bumps the epoch and turns semi-sync master on.
* Both servers reachable and read-only (both starting): the higher key becomes the main
  (the epoch's named main; a fresh server, epoch 0, loses; both fresh: the preferred,
  TB_DB_ROLE=main). A server whose epoch names itself also resumes as the main when its
  peer is refused (or unreachable with the peer host lost). A fresh preferred server
  bootstraps the cluster when its peer is not writable.
* Otherwise it waits, read-only: a restarted replica whose main is down cannot know
  whether its data is current, so it does not promote itself.
* Semi-synchronous replication: master side on the main only (on when it becomes the
  main, off when it is demoted or re-cloned), replica side always on; AFTER_SYNC; the
  timeout (3 s) and the no-replica rule are explained in mysql_server.py.

Known limits: what the main acknowledged asynchronously (after the semi-sync timeout,
with its backup cut off or hung) is lost if it is then lost before the backup caught up
(tests/integration/test_db_rejoin_tail.py shows it); an old main cut off from its peer
host keeps serving its own host's clients until the cut heals, and what it took then is
dropped by its re-clone; after a double failure (both servers down) the server that
comes back first may be the older one; the servers are reached on their ctrl-a addresses only, so
a cut of ctrl-a alone leaves the backup host's clients without the main (reads go to
its replica, writes fail) and replication asynchronous until the cut heals."""
from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass

import pymysql

from . import state
from .db import HA_DB, key
from .mysql_server import SOCKET, MysqlServer, root_conn
from .schema import create_and_seed
from .settings import OAM_PORT, Settings

APP = "db_agent"
PERIOD = 0.1            # the agent's tick (a period, not a wait for a condition)
PROBE_TIMEOUT = 0.5     # connect/read timeout when asking the peer server (same L2 segment)
HOST_PROBE_TIMEOUT = 0.3  # a TCP connect to a host on the same segment: answered at once
DRAIN_TIMEOUT = 30      # s to apply the received relay log before a promotion
CLONE_TIMEOUT = 120
ERROR_BACKOFF = 1.0
REARM_PERIOD = 1.0      # s between looks at the main's semi-sync status
REPLICA_START_S = 5     # s for both replication threads to run after START SLAVE
ZOMBIE_S = 3            # a killed dump thread older than this is stuck (they end at once)

NOTHING, WAIT, BECOME_MAIN, DEMOTE, CLONE = "nothing", "wait", "become_main", "demote", "clone"
# what a probe of the peer server found
P_MAIN, P_READONLY, P_REFUSED, P_UNREACHABLE, P_ERROR = \
    "main", "readonly", "refused", "unreachable", "error"


@dataclass(frozen=True)
class Local:
    read_only: bool
    epoch: int = 0
    epoch_main: str | None = None
    master_host: str | None = None     # replication source, None when not a replica
    io_running: str | None = None      # Yes / No / Connecting
    sql_running: str | None = None


@dataclass(frozen=True)
class Peer:
    state: str
    epoch: int = 0
    epoch_main: str | None = None
    error: str | None = None


def replicates_from(local: Local, ip: str) -> bool:
    """Replication from `ip` runs. MariaDB shows a connected I/O thread that is still
    setting up its session with the main (asking for its semi-sync and GTID variables)
    as "Preparing": taking that for a stopped replica re-cloned it, killing the thread
    in that request (an ERROR in the server's log). (That state is inferred from the
    log's timing, not read here; clone() also waits for both threads to run.)"""
    return (local.master_host == ip and local.sql_running == "Yes"
            and local.io_running in ("Yes", "Connecting", "Preparing"))


def decide(local: Local, peer: Peer, me: str, peer_ip: str, preferred: bool,
           peer_host_lost: bool) -> tuple[str, str]:
    """The role rule of the module docstring: (action, why)."""
    my_key = key(local.epoch, local.epoch_main, me, preferred)
    peer_key = key(peer.epoch, peer.epoch_main, peer_ip, not preferred)
    if not local.read_only:
        if peer.state == P_MAIN and peer_key > my_key:
            return DEMOTE, f"peer {peer_ip} is the main of epoch {peer.epoch} (mine {local.epoch})"
        return NOTHING, "main"
    replicating = replicates_from(local, peer_ip)
    if peer.state == P_MAIN:
        if replicating:
            return NOTHING, f"replica of {peer_ip}"
        return CLONE, f"peer {peer_ip} is the main and this server does not replicate from it"
    if peer.state == P_READONLY:
        if my_key > peer_key:
            return BECOME_MAIN, f"both read-only, this server's claim {my_key} beats {peer_key}"
        return WAIT, f"both read-only, peer {peer_ip} has the better claim {peer_key}"
    if peer.state in (P_REFUSED, P_UNREACHABLE):
        lost = f"peer {peer_ip} {peer.state}"
        may_act = peer.state == P_REFUSED or peer_host_lost
        if local.epoch == 0:
            if preferred:
                return BECOME_MAIN, f"fresh cluster, {lost}: bootstrap"
            return WAIT, f"fresh server, {lost}: waiting for a main to clone"
        if not may_act:
            return WAIT, f"{lost} but the peer host is not lost: no promotion"
        if local.epoch_main == me:
            return BECOME_MAIN, f"{lost}, this server is the main of epoch {local.epoch}: resume"
        if replicating:
            return BECOME_MAIN, f"main lost ({lost}): promote"
        return WAIT, f"{lost} and this server was not replicating: its data may be stale"
    return WAIT, f"peer {peer_ip}: {peer.error}"


def needs_rearm(status: dict) -> bool:
    """The main's semi-sync is off while a semi-sync replica is connected. MariaDB turns
    it back on only at a commit the replica acknowledges, so a replica that came back and
    caught up leaves it off until the next write: with no writes it stays off for good
    (the next commit would not wait for the backup, and the testbed is not healthy)."""
    return status.get("Rpl_semi_sync_master_status") == "OFF" and \
        int(status.get("Rpl_semi_sync_master_clients") or 0) > 0


def zombie_dump_threads(rows: list[dict], min_age_s: float = ZOMBIE_S) -> list[int]:
    """Binlog dump threads of the replication user that were killed and have not ended for
    `min_age_s` (processlist rows). MariaDB 10.11 leaves one "Killed / Waiting to finalize
    termination" when a replica cut off reconnects: its ending waits on the semi-sync ack
    receiver, and each new dump connection of that replica is refused while it lives
    (seen for minutes after a cut healed, replication stopped and the testbed unhealthy)."""
    return [int(r["ID"]) for r in rows
            if r.get("USER") == "repl" and float(r.get("TIME") or 0) >= min_age_s
            and (r.get("COMMAND") == "Killed" or r.get("STATE") == "Waiting to finalize termination")]


def classify_connect_error(exc: Exception) -> str:
    """Refused means: the peer host answers and nothing listens on 3306 (its MySQL is
    down); a timeout or no route means the host itself may be gone or cut off."""
    if isinstance(getattr(exc, "original_exception", None), ConnectionRefusedError):
        return P_REFUSED
    code = exc.args[0] if exc.args else None
    if code == 1053:            # server shutdown in progress: as good as refused
        return P_REFUSED
    if code in (2003, 2006, 2013) or isinstance(exc, pymysql.err.InterfaceError):
        return P_UNREACHABLE
    return P_ERROR


def read_epoch(cur) -> tuple[int, str | None]:
    cur.execute(f"SELECT epoch, main FROM {HA_DB}.epoch WHERE id = 1")
    row = cur.fetchone()
    if not row:
        return 0, None
    return (int(row["epoch"]), row["main"]) if isinstance(row, dict) else (int(row[0]), row[1])


def _close(conn) -> None:
    """Close a kept connection that may already be broken (its error says nothing new)."""
    if conn is not None:
        try:
            conn.close()
        except Exception:
            pass


def reachable(ip: str, port: int, timeout: float = HOST_PROBE_TIMEOUT) -> bool:
    """The host at `ip` answers: a TCP connect succeeds, or is refused (nothing listens,
    but the host is up and on the path). A timeout or no route: it does not."""
    try:
        socket.create_connection((ip, port), timeout=timeout).close()
        return True
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def db_host_peer_lost(peer_ips, witness_ips, probe=reachable) -> bool:
    """A database host's view of its peer (it has no sys_manager to ask): the peer host
    is lost when it answers on none of its control addresses while a Toolpack host
    (a witness) answers this one, so that it is not this host that is cut off. An
    isolated backup therefore never promotes itself; a cut of the link between the two
    database hosts alone still would (both then writable until it heals, the lower
    claim demoted and re-cloned: the known limit of the module docstring)."""
    if any(probe(ip, 3306) for ip in peer_ips):
        return False
    return any(probe(ip, OAM_PORT) for ip in witness_ips)


def peer_host_lost() -> bool:
    """This host is active and its sys_manager (fresh view) hears the peer on no path."""
    sysmgr = state.read("sysmgr")
    fresh = time.time() - float(sysmgr.get("updated") or 0) < 2.0
    return (fresh and state.read("role").get("role") == "active"
            and (sysmgr.get("peer") or {}).get("alive") is False)


class DbAgent(threading.Thread):
    def __init__(self, s: Settings, server: MysqlServer, connect=pymysql.connect,
                 host_lost=peer_host_lost):
        super().__init__(daemon=True, name="db-agent")
        self.s, self.server, self.connect = s, server, connect
        self.host_lost = host_lost      # is the peer *host* lost (asked when it is unreachable)
        self.preferred = s.db_role == "main"
        self.me = s.db_main if self.preferred else s.db_backup
        self.peer_ip = s.db_backup if self.preferred else s.db_main
        self.prepared_pid = None
        self.peer_conn = None
        self.root_conn = self.root_pid = None
        self.role, self.role_pid, self.step_pid = "down", None, None
        self.why = ""
        self.last = {"local": None, "peer": None}
        self.events: list[dict] = []
        self.stop = threading.Event()
        self.retry_at = 0.0
        self.next_rearm = 0.0

    # ---- the loop -------------------------------------------------------------------
    def run(self):
        while not self.stop.wait(PERIOD):
            if time.monotonic() < self.retry_at:
                continue
            try:
                self.step()
            except Exception as exc:
                # a failed action is decided afresh a little later (not 10 times a second)
                self.event("error", f"{type(exc).__name__}: {exc}")
                self.retry_at = time.monotonic() + ERROR_BACKOFF

    def step(self):
        # the mariadbd this step reads and acts on: a kill and a start during a slow step
        # (a peer probe waits up to its timeout) must not give the new server this role
        self.step_pid = self.server.pid
        if not self.server.running():
            self._set_role("down", "mariadbd not running")
            self.prepared_pid = None
            return
        try:
            conn = self._root()
        except pymysql.err.MySQLError:
            self._set_role("starting", "mariadbd not accepting connections yet")
            return
        try:
            if self.prepared_pid != self.step_pid:
                self.prepare(conn)
                self.prepared_pid = self.step_pid
            local = self.read_local(conn)
            peer = self.probe_peer()
            self.last = {"local": local.__dict__, "peer": peer.__dict__}
            action, why = decide(local, peer, self.me, self.peer_ip, self.preferred,
                                 peer.state == P_UNREACHABLE and self.host_lost())
            if action == BECOME_MAIN:
                self.become_main(conn, local, peer, why)
            elif action == DEMOTE:
                self.demote(conn, why)
            elif action == CLONE:
                self.clone(conn, why)
            else:
                self._set_role("main" if not local.read_only else
                               ("replica" if action == NOTHING else "waiting"), why)
                if not local.read_only:
                    self.rearm_semi_sync(conn)
        except BaseException:
            self._close_root()      # a failed step connects afresh next time
            raise

    def _root(self):
        """The local server's root connection, kept across ticks (a new connection ten
        times a second cost the host a fifth of a core) and made anew for a new mariadbd."""
        if self.root_conn is not None and self.root_pid == self.step_pid:
            return self.root_conn
        self._close_root()
        self.root_conn, self.root_pid = root_conn(timeout=1.0), self.step_pid
        return self.root_conn

    def _close_root(self):
        _close(self.root_conn)
        self.root_conn = self.root_pid = None

    # ---- reading --------------------------------------------------------------------
    def read_local(self, conn) -> Local:
        with conn.cursor() as cur:
            cur.execute("SELECT @@read_only AS ro")
            ro = bool(cur.fetchone()["ro"])
            epoch, main = read_epoch(cur)
            cur.execute("SHOW SLAVE STATUS")
            rep = cur.fetchone()
        if not rep or not rep.get("Master_Host"):
            return Local(ro, epoch, main)
        return Local(ro, epoch, main, rep["Master_Host"], rep["Slave_IO_Running"],
                     rep["Slave_SQL_Running"])

    def probe_peer(self) -> Peer:
        try:
            if self.peer_conn is None:
                self.peer_conn = self.connect(
                    host=self.peer_ip, port=3306, user="toolpack", password=self.s.db_password,
                    connect_timeout=PROBE_TIMEOUT, read_timeout=PROBE_TIMEOUT,
                    write_timeout=PROBE_TIMEOUT, autocommit=True,
                    cursorclass=pymysql.cursors.DictCursor, ssl_disabled=True)
            with self.peer_conn.cursor() as cur:
                cur.execute("SELECT @@read_only AS ro")
                ro = bool(cur.fetchone()["ro"])
                epoch, main = read_epoch(cur)
            return Peer(P_READONLY if ro else P_MAIN, epoch, main)
        except (pymysql.err.MySQLError, OSError) as exc:
            had_conn = self.peer_conn is not None
            self._close_peer()
            if had_conn:            # a broken kept connection says little: ask afresh
                return self.probe_peer()
            return Peer(classify_connect_error(exc), error=str(exc))

    def _close_peer(self):
        _close(self.peer_conn)
        self.peer_conn = None

    # ---- actions --------------------------------------------------------------------
    def prepare(self, conn):
        """Once per mariadbd start: local users and the HA table, outside the binlog
        (users are per server; the epoch row itself is written with the binlog on)."""
        pw, rpw = self.s.db_password, self.s.repl_password
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin=0")
            cur.execute("CREATE USER IF NOT EXISTS 'toolpack'@'%%' IDENTIFIED BY %s", (pw,))
            cur.execute("ALTER USER 'toolpack'@'%%' IDENTIFIED BY %s", (pw,))
            cur.execute("GRANT ALL ON toolpack.* TO 'toolpack'@'%'")
            cur.execute(f"GRANT SELECT ON {HA_DB}.* TO 'toolpack'@'%'")
            cur.execute("GRANT REPLICA MONITOR, BINLOG MONITOR ON *.* TO 'toolpack'@'%'")
            cur.execute("CREATE USER IF NOT EXISTS 'repl'@'%%' IDENTIFIED BY %s", (rpw,))
            cur.execute("ALTER USER 'repl'@'%%' IDENTIFIED BY %s", (rpw,))
            # replication, and the clone (mariadb-dump --master-data) taken by a returning peer
            cur.execute("GRANT REPLICATION SLAVE, RELOAD, BINLOG MONITOR ON *.* TO 'repl'@'%'")
            for db in ("toolpack", HA_DB):
                cur.execute(f"GRANT SELECT, LOCK TABLES, SHOW VIEW, TRIGGER, EVENT ON {db}.* "
                            "TO 'repl'@'%'")
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {HA_DB}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {HA_DB}.epoch (id TINYINT PRIMARY KEY, "
                        "epoch INT NOT NULL, main VARCHAR(64) NOT NULL, t DOUBLE NOT NULL)")
            cur.execute("SET SESSION sql_log_bin=1")
        self.event("prepared", f"users and {HA_DB} ready (pid {self.server.pid})")

    def become_main(self, conn, local: Local, peer: Peer, why: str):
        t0 = time.monotonic()
        with conn.cursor() as cur:
            if local.master_host:
                # apply everything received from the lost main before taking writes
                cur.execute("STOP SLAVE IO_THREAD")
                cur.execute("SHOW SLAVE STATUS")
                io_pos = (cur.fetchone() or {}).get("Gtid_IO_Pos") or ""
                if io_pos:
                    cur.execute("SELECT MASTER_GTID_WAIT(%s, %s) AS r", (io_pos, DRAIN_TIMEOUT))
                    if cur.fetchone()["r"] != 0:
                        cur.execute("START SLAVE IO_THREAD")
                        raise RuntimeError(f"relay log not applied up to {io_pos} within "
                                           f"{DRAIN_TIMEOUT} s: not promoting")
                cur.execute("STOP SLAVE")
                cur.execute("RESET SLAVE ALL")
            if local.epoch == 0:
                with root_conn(dict_cursor=False) as plain, plain.cursor() as pcur:
                    create_and_seed(pcur)
            if local.epoch_main != self.me or local.epoch == 0:
                epoch = max(local.epoch, peer.epoch) + 1
                cur.execute(f"INSERT INTO {HA_DB}.epoch (id, epoch, main, t) VALUES (1, %s, %s, %s) "
                            "ON DUPLICATE KEY UPDATE epoch = VALUES(epoch), main = VALUES(main), "
                            "t = VALUES(t)", (epoch, self.me, time.time()))
            else:
                epoch = local.epoch
            cur.execute("SET GLOBAL rpl_semi_sync_master_enabled = ON")
            cur.execute("SET GLOBAL read_only = OFF")
        self.event("main", f"{why}; epoch {epoch}; writable after {time.monotonic() - t0:.3f} s")
        self._set_role("main", why)

    def rearm_semi_sync(self, conn):
        """On the main, once a second: a heartbeat commit (the epoch row's time, nothing
        the role rule reads) while semi-sync is off with a replica connected (needs_rearm):
        the replica's acknowledgement of it turns semi-sync back on."""
        now = time.monotonic()
        if now < self.next_rearm:
            return
        self.next_rearm = now + REARM_PERIOD
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN "
                        "('Rpl_semi_sync_master_status', 'Rpl_semi_sync_master_clients')")
            status = {r["Variable_name"]: r["Value"] for r in cur.fetchall()}
            if needs_rearm(status):
                cur.execute(f"UPDATE {HA_DB}.epoch SET t = %s WHERE id = 1", (time.time(),))
            cur.execute("SELECT ID, USER, COMMAND, STATE, TIME FROM information_schema.PROCESSLIST "
                        "WHERE USER = 'repl'")
            stuck = zombie_dump_threads(cur.fetchall())
            if stuck:
                # turning semi-sync master off and on restarts its ack receiver, which lets
                # the killed thread end (the commits of that instant are asynchronous)
                cur.execute("SET GLOBAL rpl_semi_sync_master_enabled = OFF")
                cur.execute("SET GLOBAL rpl_semi_sync_master_enabled = ON")
                self.event("semi_sync", f"dump thread(s) {stuck} killed but stuck for "
                                        f">= {ZOMBIE_S} s: semi-sync master restarted")

    def demote(self, conn, why: str):
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL read_only = ON")
            cur.execute("SET GLOBAL rpl_semi_sync_master_enabled = OFF")
        self.kill_clients(conn)
        self.event("demoted", why)
        self._set_role("waiting", why)

    def kill_clients(self, conn):
        """Clients connected to a server that stops being the main reconnect and re-select."""
        with conn.cursor() as cur:
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'toolpack'")
            for row in cur.fetchall():
                try:
                    cur.execute("KILL CONNECTION %s", (row["ID"],))
                except pymysql.err.MySQLError:
                    pass    # already gone

    def clone(self, conn, why: str):
        """Replace this server's data by the main's and replicate from its position."""
        t0 = time.monotonic()
        self._set_role("cloning", why)
        self.kill_clients(conn)
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL read_only = ON")
            cur.execute("SET GLOBAL rpl_semi_sync_master_enabled = OFF")
            cur.execute("STOP SLAVE")
            cur.execute("RESET SLAVE ALL")
            # forget this server's own binlog: a tail the main never saw must not survive,
            # and gtid_strict_mode refuses a slave position behind the local binlog
            cur.execute("RESET MASTER")
        env = {"MYSQL_PWD": self.s.repl_password, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
        dump = subprocess.run(
            ["mariadb-dump", f"--host={self.peer_ip}", "--port=3306", "--user=repl",
             "--databases", "toolpack", HA_DB, "--single-transaction",
             "--gtid", "--master-data=1", "--add-drop-database"],
            capture_output=True, env=env, timeout=CLONE_TIMEOUT)
        if dump.returncode != 0:
            raise RuntimeError("mariadb-dump from the main failed: "
                               + dump.stderr.decode(errors="replace").strip()[-300:])
        m = re.search(rb"SET GLOBAL gtid_slave_pos='([^']*)'", dump.stdout)
        if not m or not m.group(1):
            raise RuntimeError("the main's dump carries no GTID position")
        gtid = m.group(1).decode()
        load = subprocess.run(
            ["mariadb", f"--socket={SOCKET}", "--user=root",
             "--init-command=SET SESSION sql_log_bin=0"],     # the copy is not a new history
            input=dump.stdout, capture_output=True, timeout=CLONE_TIMEOUT)
        if load.returncode != 0:
            raise RuntimeError("loading the main's dump failed: "
                               + load.stderr.decode(errors="replace").strip()[-300:])
        with conn.cursor() as cur:
            cur.execute("SELECT @@gtid_slave_pos AS p")
            if cur.fetchone()["p"] != gtid:
                raise RuntimeError(f"gtid_slave_pos is not {gtid} after the clone")
            cur.execute("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=3306, MASTER_USER='repl', "
                        "MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, "
                        "MASTER_HEARTBEAT_PERIOD=0.5", (self.peer_ip, self.s.repl_password))
            cur.execute("START SLAVE")
        # START SLAVE returns before both threads run: a step that read the status in
        # between took this server for one that does not replicate and cloned it again
        # (killing the I/O thread in its first request to the main: an ERROR in the log)
        end = time.monotonic() + REPLICA_START_S
        while not replicates_from(local := self.read_local(conn), self.peer_ip):
            if time.monotonic() > end:
                raise RuntimeError(f"replication from {self.peer_ip} not running "
                                   f"{REPLICA_START_S} s after the clone: IO "
                                   f"{local.io_running}, SQL {local.sql_running}")
            time.sleep(0.05)
        self.event("cloned", f"{why}; from {self.peer_ip} at {gtid} "
                             f"({len(dump.stdout)} bytes, {time.monotonic() - t0:.2f} s)")
        self._set_role("replica", f"replica of {self.peer_ip}")

    # ---- reporting ------------------------------------------------------------------
    def event(self, kind: str, msg: str):
        self.events = (self.events + [{"t": time.time(), "kind": kind, "msg": msg}])[-50:]
        state.log(APP, f"{kind}: {msg}")
        self.publish()

    def _set_role(self, role: str, why: str):
        # role_pid: the mariadbd the role was decided for (the step's, read when it began).
        # A kill and a start within one error backoff, or within one slow step, leave the
        # old role standing until a step of the new server decides.
        self.role_pid = None if role == "down" else self.step_pid
        if role != self.role:
            self.role, self.why = role, why
            self.event("role", f"{role} ({why})")
        self.why = why

    def publish(self):
        state.write("db", self.status())

    def status(self) -> dict:
        return {"ip": self.me, "peer": self.peer_ip, "role": self.role, "role_pid": self.role_pid,
                "why": self.why,
                "last": self.last, "events": self.events[-20:], "updated": time.time()}
