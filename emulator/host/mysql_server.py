"""The host's MariaDB server as an OS service: its process (start, clean shutdown, kill,
status), owned by the host's init, and the local root connection the database agent uses.

Every start is read-only (`--read-only=ON`) with semi-sync master off: a server that
starts never takes writes until the agent (`db_agent.py`) has decided it is the main."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pymysql

from .settings import Settings

SOCKET = "/run/mysqld/mysqld.sock"
DATADIR = "/var/lib/mysql"
START_DEADLINE = 60.0
STOP_DEADLINE = 60.0

# Why 3000 ms: the main waits this long for the backup's acknowledgement before it
# silently falls back to asynchronous replication (until the backup has caught up again).
# It bounds the stall of a write while the backup is connected but not answering
# (paused, or its network cut before TCP notices); it must stay below the client's read
# timeout (db.py, 6 s) so a stalled write still gets its answer; and it must be well
# above a normal acknowledgement (milliseconds) so a busy machine does not trip it.
# When the backup disconnects outright (its MySQL killed or shut down) there is no wait
# at all: rpl_semi_sync_master_wait_no_slave=OFF reverts to asynchronous at once.
SEMISYNC_TIMEOUT_MS = int(os.environ.get("TB_SEMISYNC_TIMEOUT_MS", "3000"))


class CtlError(Exception):
    """A control request that cannot be done; the message is shown to the operator."""


def server_id(s: Settings) -> int:
    return 1 if s.db_role == "main" else 2


def mariadbd_args(s: Settings) -> list[str]:
    return ["mariadbd", "--user=mysql", f"--datadir={DATADIR}", f"--socket={SOCKET}",
            "--bind-address=0.0.0.0", "--port=3306", f"--server-id={server_id(s)}",
            "--log-bin=mysql-bin", "--relay-log=relay-bin", "--binlog-format=ROW",
            "--log-slave-updates=ON", "--gtid-strict-mode=ON", "--skip-name-resolve",
            # the agent decides the role: no replication and no writes before it has
            "--skip-slave-start", "--read-only=ON",
            "--rpl-semi-sync-master-enabled=OFF", "--rpl-semi-sync-slave-enabled=ON",
            # AFTER_SYNC: a commit becomes visible only after the backup has it (the
            # default AFTER_COMMIT shows it to other clients before: lossy on failover)
            "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
            f"--rpl-semi-sync-master-timeout={SEMISYNC_TIMEOUT_MS}",
            "--rpl-semi-sync-master-wait-no-slave=OFF",
            # a replica notices a silent main after 2 s (heartbeat every 0.5 s: four missed);
            # a promotion's STOP SLAVE waits for an IO thread stuck connecting to a vanished
            # main, measured 2 s (1 s made no difference, and risks reconnects under load)
            "--slave-net-timeout=2", "--innodb-buffer-pool-size=32M", "--performance-schema=OFF",
            "--innodb-log-file-size=16M"]


def root_conn(timeout: float = 2.0, dict_cursor: bool = True):
    return pymysql.connect(unix_socket=SOCKET, user="root", autocommit=True, ssl_disabled=True,
                           connect_timeout=timeout, read_timeout=30,
                           cursorclass=pymysql.cursors.DictCursor if dict_cursor
                           else pymysql.cursors.Cursor)


class MysqlServer:
    """The mariadbd process, a child of init. It is never restarted on its own: a host whose
    MySQL was killed stays up with MySQL down until `ctl mysql start` (as on a real host)."""

    def __init__(self, s: Settings):
        self.s = s
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()      # one lifecycle operation at a time
        self.started_at: float | None = None
        self.last_exit: dict | None = None

    # ---- state --------------------------------------------------------------------
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running() else None

    def accepting(self) -> bool:
        try:
            root_conn(timeout=1.0).close()
            return True
        except pymysql.err.MySQLError:
            return False

    # ---- lifecycle ------------------------------------------------------------------
    def _prepare_dirs(self):
        os.makedirs("/run/mysqld", exist_ok=True)
        subprocess.run(["chown", "mysql:mysql", "/run/mysqld"], check=True)
        if not os.path.isdir(os.path.join(DATADIR, "mysql")):
            subprocess.run(["mariadb-install-db", "--user=mysql", f"--datadir={DATADIR}",
                            "--skip-test-db", "--auth-root-authentication-method=socket"],
                           check=True, stdout=subprocess.DEVNULL)

    def start(self) -> str:
        """Start mariadbd and wait until it accepts connections on its socket."""
        with self.lock:
            if self.running():
                return f"mysql is already running (pid {self.proc.pid})"
            self._prepare_dirs()
            self.proc = subprocess.Popen(mariadbd_args(self.s))
            self.started_at = time.time()
            proc = self.proc
        end = time.monotonic() + START_DEADLINE
        while not self.accepting():
            if proc.poll() is not None:
                raise CtlError(f"mariadbd exited with code {proc.returncode} while starting")
            if time.monotonic() > end:
                raise CtlError(f"mariadbd (pid {proc.pid}) did not accept connections "
                               f"within {START_DEADLINE:.0f} s")
            time.sleep(0.1)
        return f"mysql started (pid {proc.pid})"

    def _stop(self, sig: int, how: str) -> str:
        with self.lock:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                raise CtlError("mysql is not running")
            t0, signalled_at = time.monotonic(), time.time()
            proc.send_signal(sig)
            try:
                code = proc.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                raise CtlError(f"mariadbd (pid {proc.pid}) still running "
                               f"{STOP_DEADLINE:.0f} s after {how}") from None
            # signalled_at: when the fault happened (the harness's injection time)
            self.last_exit = {"how": how, "code": code, "signalled_at": signalled_at,
                              "exited_at": time.time()}
            return f"mysql {how} (pid {proc.pid}, exit code {code}, {time.monotonic() - t0:.2f} s)"

    def shutdown(self) -> str:
        """Clean shutdown (SIGTERM = SHUTDOWN): mariadbd flushes and exits; wait for it."""
        return self._stop(signal.SIGTERM, "shut down")

    def kill(self) -> str:
        """SIGKILL, as a crash: no flush, no goodbye to the clients or the replica."""
        return self._stop(signal.SIGKILL, "killed")

    def status(self) -> dict:
        return {"running": self.running(), "pid": self.pid, "started_at": self.started_at,
                "last_exit": self.last_exit}
