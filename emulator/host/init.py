"""The host's init (under tini): starts the OS services of a Toolpack host, the MariaDB
server and the Toolpack service, like systemd would. The main server creates the schema;
the backup replicates from it (GTID, semi-synchronous, explicit IPs)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pymysql

from . import state
from .schema import create_and_seed
from .settings import Settings

APP = "init"
SOCKET = "/run/mysqld/mysqld.sock"
DATADIR = "/var/lib/mysql"



def mariadbd_args(s: Settings) -> list[str]:
    server_id = 1 if s.host.endswith("a") else 2
    return ["mariadbd", "--user=mysql", f"--datadir={DATADIR}", f"--socket={SOCKET}",
            "--bind-address=0.0.0.0", "--port=3306", f"--server-id={server_id}",
            "--log-bin=mysql-bin", "--relay-log=relay-bin", "--binlog-format=ROW",
            "--log-slave-updates=ON", "--gtid-strict-mode=ON", "--skip-name-resolve",
            "--skip-slave-start",
            # the main waits for the backup's ack (AFTER_SYNC is the lossless point); the
            # backup must not wait for acks of what it applies, or each event stalls it
            f"--rpl-semi-sync-master-enabled={'ON' if s.db_role == 'main' else 'OFF'}",
            "--rpl-semi-sync-slave-enabled=ON",
            "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
            f"--rpl-semi-sync-master-timeout={os.environ.get('TB_SEMISYNC_TIMEOUT_MS', '10000')}",
            "--slave-net-timeout=4", "--innodb-buffer-pool-size=32M", "--performance-schema=OFF",
            "--innodb-log-file-size=16M"]


def root_conn():
    return pymysql.connect(unix_socket=SOCKET, user="root", autocommit=True)


def wait_mariadb(proc, deadline_s=60.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"mariadbd exited with {proc.returncode} during start")
        try:
            root_conn().close()
            return
        except pymysql.err.MySQLError:
            time.sleep(0.1)
    raise SystemExit("mariadbd did not accept connections within 60 s")


def bootstrap(s: Settings):
    conn = root_conn()
    with conn.cursor() as cur:
        # users are local to each server (not replicated), so both servers create them
        cur.execute("SET SESSION sql_log_bin=0")
        cur.execute("CREATE USER IF NOT EXISTS 'toolpack'@'%%' IDENTIFIED BY %s", (s.db_password,))
        cur.execute("ALTER USER 'toolpack'@'%%' IDENTIFIED BY %s", (s.db_password,))
        cur.execute("GRANT ALL ON toolpack.* TO 'toolpack'@'%'")
        cur.execute("GRANT REPLICA MONITOR, BINLOG MONITOR ON *.* TO 'toolpack'@'%'")
        cur.execute("CREATE USER IF NOT EXISTS 'repl'@'%%' IDENTIFIED BY %s", (s.repl_password,))
        cur.execute("ALTER USER 'repl'@'%%' IDENTIFIED BY %s", (s.repl_password,))
        cur.execute("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'")
        cur.execute("SET SESSION sql_log_bin=1")
        if s.db_role == "main":
            create_and_seed(cur)
        else:
            cur.execute("STOP SLAVE")
            cur.execute("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=3306, MASTER_USER='repl', "
                        "MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, "
                        "MASTER_HEARTBEAT_PERIOD=1", (s.db_main, s.repl_password))
            cur.execute("START SLAVE")
    conn.close()


def main():
    s = Settings.from_env()
    os.makedirs("/run/mysqld", exist_ok=True)
    subprocess.run(["chown", "mysql:mysql", "/run/mysqld"], check=True)
    if not os.path.isdir(os.path.join(DATADIR, "mysql")):
        subprocess.run(["mariadb-install-db", "--user=mysql", f"--datadir={DATADIR}",
                        "--skip-test-db", "--auth-root-authentication-method=socket"],
                       check=True, stdout=subprocess.DEVNULL)
    db = subprocess.Popen(mariadbd_args(s))
    wait_mariadb(db)
    bootstrap(s)
    state.log(APP, f"mariadb up as {s.db_role}")
    service = subprocess.Popen([sys.executable, "-m", "emulator.host.service_monitor"])

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.2)   # init idles like systemd; the children are supervised elsewhere
    # host shutdown: the Toolpack service quits gracefully (hands over), then the database
    if service.poll() is None:
        service.terminate()
        try:
            service.wait(timeout=10)
        except subprocess.TimeoutExpired:
            service.kill()
    if db.poll() is None:
        db.terminate()
        db.wait(timeout=20)


if __name__ == "__main__":
    main()
