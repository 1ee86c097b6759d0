"""Faults of the seed's "MySQL operations" and "Toolpack operations" (quit), done the way
an operator does them on the host: the host control tool, run with `docker exec`

    python -m emulator.host.ctl mysql shutdown|kill|start|status
    python -m emulator.host.ctl service quit|start|status

(the harness runs a command in the container; it does not import emulator). Each fault's
time is when the host's init sent the signal (from the tool's reply), not when the
`docker exec` began."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from .faults import Fault, wait_for
from .testbed import HOSTS, Testbed, TestbedError, log

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


def _start_container(tb: Testbed, host: str) -> bool:
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


@dataclass
class MysqlKill(Fault):
    """The seed's "Kill MySQL service": SIGKILL to mariadbd on `host`. heal() starts it
    again and waits until it has rejoined (as a replica of the current main, re-cloned
    from it) and the testbed is healthy (replication running semi-synchronously)."""
    host: str = ""
    heal_deadline_s: float = 120.0
    action = "kill"

    @property
    def name(self):
        return f"{self.action} MySQL on {self.host}"

    def inject(self) -> float:
        t0 = time.time()
        reply = ctl(self.tb, self.host, "mysql", self.action)
        self.injected_at = (reply["data"].get("last_exit") or {}).get("signalled_at", t0)
        log(f"fault: {reply['message']} on {self.host}")
        return self.injected_at

    def _rejoined(self):
        try:
            data = ctl(self.tb, self.host, "mysql", "status")["data"]
        except TestbedError:
            return False
        role = (data.get("agent") or {}).get("role")
        if not data.get("running") or role not in ("main", "replica"):
            return False
        ok, _ = self.tb.health()
        return ok

    def heal(self) -> None:
        if not _start_container(self.tb, self.host):
            log(f"heal: {ctl(self.tb, self.host, 'mysql', 'start')['message']} on {self.host}")
        wait_for(self._rejoined, self.heal_deadline_s,
                 f"MySQL on {self.host} rejoined and the testbed healthy", interval=0.5)
        self.healed_at = time.time()


@dataclass
class MysqlShutdown(MysqlKill):
    """The seed's "Shutdown the MySQL service": a clean shutdown (SIGTERM, as SHUTDOWN),
    waiting for mariadbd to exit. Healed like MysqlKill."""
    action = "shutdown"


@dataclass
class ServiceQuit(Fault):
    """The seed's "Quit (graceful) Toolpack service": SIGTERM to the service monitor,
    which hands the active role over and stops its applications; the tool returns when
    it has exited. heal() starts the service again and waits until its 4 applications
    run (the host rejoins as standby)."""
    host: str = ""
    heal_deadline_s: float = 60.0

    @property
    def name(self):
        return f"quit the Toolpack service on {self.host}"

    def inject(self) -> float:
        t0 = time.time()
        reply = ctl(self.tb, self.host, "service", "quit")
        self.injected_at = (reply["data"].get("last_quit") or {}).get("signalled_at", t0)
        log(f"fault: {reply['message']} on {self.host}")
        return self.injected_at

    def _apps_running(self):
        try:
            apps = self.tb.oam(self.host, "/api/v1/status", timeout=1.5)["apps"]
        except TestbedError:
            return False
        return len(apps) >= 4 and all(a.get("state") == "running" for a in apps.values())

    def heal(self) -> None:
        if not _start_container(self.tb, self.host):
            log(f"heal: {ctl(self.tb, self.host, 'service', 'start')['message']} on {self.host}")
        wait_for(self._apps_running, self.heal_deadline_s,
                 f"the Toolpack service's applications running on {self.host}", interval=0.3)
        self.healed_at = time.time()


def sweep_host_services(tb: Testbed) -> None:
    """Sweep for leftovers of a killed run: MySQL and the Toolpack service running on
    every running host (idempotent: `start` of a running one changes nothing). Meant for
    faults.heal_all, after the containers are running again."""
    for h in HOSTS:
        for what in ("mysql", "service"):
            try:
                msg = ctl(tb, h, what, "start")["message"]
            except TestbedError as exc:
                log(f"sweep: {h}: {exc}")
                continue
            if "already running" not in msg:
                log(f"sweep: {msg} on {h}")
