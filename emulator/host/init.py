"""The host's init (under tini): starts the OS services of a Toolpack host like systemd
would, the MariaDB server (its role is decided by the database agent, db_agent.py) and
the Toolpack service, and serves the host control requests of `ctl.py` on a unix socket.

init outlives its services: when mariadbd or the service exits (killed, shut down,
quit) it stays up and they stay down until `ctl ... start`, as on a real host. SIGTERM
(host shutdown) quits the Toolpack service gracefully (it hands over), then the database."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from .. import sshd
from . import ctl, state
from .db_agent import DbAgent
from .mysql_server import CtlError, MysqlServer
from .role_log import RoleLog
from .settings import Settings

APP = "init"
SERVICE_QUIT_DEADLINE = 30.0     # the service hands over and stops 4 apps: seconds


class ToolpackService:
    """`python -m emulator.host.service_monitor`, a child of init."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.last_quit: dict | None = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> str:
        with self.lock:
            if self.running():
                return f"the Toolpack service is already running (pid {self.proc.pid})"
            self.proc = subprocess.Popen([sys.executable, "-m", "emulator.host.service_monitor"])
            state.log(APP, f"Toolpack service started (pid {self.proc.pid})")
            return f"the Toolpack service started (pid {self.proc.pid})"

    def quit(self, deadline: float = SERVICE_QUIT_DEADLINE) -> str:
        """SIGTERM: the service hands over and stops its applications itself; wait for it."""
        with self.lock:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                raise CtlError("the Toolpack service is not running")
            t0, signalled_at = time.monotonic(), time.time()
            proc.terminate()
            try:
                code = proc.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                raise CtlError(f"the Toolpack service (pid {proc.pid}) still running "
                               f"{deadline:.0f} s after SIGTERM") from None
            self.last_quit = {"code": code, "signalled_at": signalled_at, "exited_at": time.time()}
            return (f"the Toolpack service quit (pid {proc.pid}, exit code {code}, "
                    f"{time.monotonic() - t0:.2f} s)")

    def status(self) -> dict:
        return {"running": self.running(), "pid": self.proc.pid if self.running() else None,
                "exit_code": None if self.proc is None or self.running() else self.proc.returncode,
                "last_quit": self.last_quit}


def mysql_status(server: MysqlServer, agent: DbAgent) -> tuple[str, dict]:
    # no lock with the agent: a status during a clone answers at once (role "cloning")
    data = {**server.status(), "agent": agent.status()}
    if not data["running"]:
        return "mysql stopped", data
    return f"mysql running (pid {data['pid']}), {agent.role}: {agent.why}", data


def handlers(server: MysqlServer, agent: DbAgent, service: ToolpackService) -> dict:
    def service_status():
        st = service.status()
        return ((f"the Toolpack service is running (pid {st['pid']})" if st["running"]
                 else "the Toolpack service is stopped"), st)

    return {
        ("mysql", "start"): lambda: (server.start(), server.status()),
        ("mysql", "shutdown"): lambda: (server.shutdown(), server.status()),
        ("mysql", "kill"): lambda: (server.kill(), server.status()),
        ("mysql", "status"): lambda: mysql_status(server, agent),
        ("service", "start"): lambda: (service.start(), service.status()),
        ("service", "quit"): lambda: (service.quit(), service.status()),
        ("service", "status"): service_status,
    }


def main():
    s = Settings.from_env()
    server = MysqlServer(s)
    agent = DbAgent(s, server)
    service = ToolpackService()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # a host that was powered off while active left its role log open: close it at its
    # last liveness stamp before the service (and a new sys_manager) starts
    if RoleLog(s.host).close_dead("host booted: the previous boot ended while active"):
        state.log(APP, "role log: closed the previous boot's active interval")

    if sshd.start() is not None:
        state.log(APP, "sshd started (keys from the bring-up)")
    try:
        state.log(APP, server.start())
    except Exception as exc:      # the host stays up with MySQL down, as a real one would
        state.log(APP, f"mysql did not start: {exc}")
    agent.start()
    service.start()      # the applications wait (bounded) for the agent to settle a main
    control = ctl.serve(handlers(server, agent, service))
    state.log(APP, f"host control on {ctl.SOCKET_PATH}")

    while not stop.wait(0.5):
        pass             # init idles like systemd; its children are reaped by their owners
    # host shutdown: the Toolpack service quits gracefully (hands over), then the database
    control.shutdown()
    if service.running():
        try:
            service.quit(deadline=10)     # within compose's stop_grace_period (20 s)
        except CtlError:
            service.proc.kill()
    agent.stop.set()
    if server.running():
        try:
            server.shutdown()
        except CtlError:
            server.kill()


if __name__ == "__main__":
    main()
