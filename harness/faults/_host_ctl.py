"""The host control tool, run the way an operator does on the host: `docker exec`

    python -m emulator.host.ctl mysql shutdown|kill|start|status
    python -m emulator.host.ctl service quit|start|status

(the harness runs a command in the container; it does not import emulator), and which
host's MariaDB is the main: one of the Toolpack hosts, or in the external-db variant one
of the database hosts of their own (`tb.db_hosts`)."""
from __future__ import annotations

import json

from ..testbed import HOSTS, Testbed, TestbedError, log
from ..util import each, wait_for

CTL = ["python", "-m", "emulator.host.ctl"]


def ctl(tb: Testbed, host: str, what: str, action: str) -> dict:
    """Run the control tool in the host's container; its JSON reply (raises on failure)."""
    c = tb.container(host)
    c.reload()
    if c.status != "running":
        raise TestbedError(f"ctl {what} {action}: {host} is {c.status}")
    res = c.exec_run(CTL + [what, action, "--json"])
    out = res.output.decode(errors="replace").strip()
    try:
        reply = json.loads(out.splitlines()[-1])
    except (ValueError, IndexError):
        raise TestbedError(f"ctl {what} {action} on {host} (exit {res.exit_code}): {out}") from None
    if res.exit_code != 0 or not reply.get("ok"):
        raise TestbedError(f"ctl {what} {action} on {host}: {reply.get('message')}")
    return reply


def start_container(tb: Testbed, host: str) -> bool:
    """A host that is down comes back with its services (its init starts them)."""
    c = tb.container(host)
    c.reload()
    if c.status == "running":
        return False
    if c.status == "paused":
        c.unpause()
    else:
        c.start()
    return True


def db_main_host(tb: Testbed) -> str:
    """The host whose MariaDB is the main now (there is no automatic failback), from a
    view asked for now: an OAM's cached view may be from before the last failover."""
    ip = tb.db_view()["main"]["ip"]
    return next(h for h in tb.db_hosts if ip in (tb.ip(h, "ctrl-a"), tb.ip(h, "ctrl-b")))


def mysql_rejoined(tb: Testbed, host: str) -> bool:
    """The host's MariaDB runs as the main or a replica, and the testbed is healthy
    (replication running semi-synchronously)."""
    try:
        data = ctl(tb, host, "mysql", "status")["data"]
    except TestbedError:
        return False
    agent = data.get("agent") or {}
    if not data.get("running") or agent.get("role") not in ("main", "replica"):
        return False
    if agent.get("role_pid") != data.get("pid"):
        return False        # the role is the one decided for the server before this one
    return tb.health()[0]


def restore_db_main(tb: Testbed, host: str, master: str, deadline_s: float = 120.0) -> None:
    """Make `host`'s MariaDB the main again. There is no failback command: the way back
    is a database failover, without a Toolpack switchover: shut the current main down
    (its replica on `host` is promoted: its peer refuses connections), start it again
    (it is re-cloned from the new main and replicates from it)."""
    main = db_main_host(tb)
    if main == host:
        return

    def promoted():   # its own agent says so: the clients' view may run ahead of it
        try:
            return (ctl(tb, host, "mysql", "status")["data"].get("agent") or {}).get("role") == "main"
        except TestbedError:
            return False
    log(f"restoring the database main onto {host}: shutting MySQL down on {main}")
    ctl(tb, main, "mysql", "shutdown")
    try:
        wait_for(promoted, 30, f"{host}'s MariaDB promoted", interval=0.3)
    finally:                      # never leave the other server down
        ctl(tb, main, "mysql", "start")
    wait_for(lambda: mysql_rejoined(tb, main), deadline_s,
             f"MySQL on {main} rejoined as the replica", interval=0.5)


def sweep_host_ctl(tb: Testbed, what: str) -> None:
    """`ctl <what> start` on every running host that has it: MySQL (the database hosts)
    or the Toolpack service (the Toolpack hosts) left stopped by a killed run (`start`
    of a running one changes nothing)."""
    def start(h):
        try:
            msg = ctl(tb, h, what, "start")["message"]
        except TestbedError as exc:
            log(f"sweep: {h}: {exc}")
            return
        if "already running" not in msg:
            log(f"sweep: {msg} on {h}")
    each(tb.db_hosts if what == "mysql" else HOSTS, start)
