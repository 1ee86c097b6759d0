"""The Toolpack service: starts the four applications, restarts a crashed one at once,
kills and restarts a deadlocked one (no heartbeat within the deadline: a SIGSTOPped
process is the test's deadlock), honours Run / Don't Run, and on a graceful quit hands
the active role to the peer before stopping the applications in order.

A silent application with a thread that is runnable or in disk wait is starved, not
deadlocked (a hung process sleeps on a lock or is stopped): on a 2-core machine under a
heavy run, every application of both hosts once went silent for 0.6 s together, and the
monitor's kills made a false failover. Such an application gets BUSY_S before it is
taken for hung (a livelock spins forever), and the monitor logs it as `starved`.

Publishes RUN_DIR/monitor.json: per application its state, pid, restarts and heartbeat
age, and a list of timestamped events (start, crash, deadlock, restart, quit, ...)."""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

from . import state
from .app_runner import MONITOR_PORT
from .settings import APPS, SYSMGR_PORT
from .udp import Client

APP = "toolpack"
CRASH_BACKOFF = 0.2        # a crash-looping app is restarted at most this often
DEADLOCK_S = int(os.environ.get("TB_DEADLOCK_MS", "500")) / 1000.0
# A starting interpreter gets this long before the deadlock deadline applies: a host that
# boots starts every application at once beside its other work, and on a busy machine a
# healthy one was starved past 0.5 s a second after its start and killed (CI, a host back
# from a power-off). One truly hung at its start is killed when the grace ends.
FIRST_BEAT_S = 5.0
BUSY_S = 2.0               # the silence a runnable (starved or spinning) application gets
RUN_FLAGS_EVERY = 1.0
MAX_EVENTS = 200


def thread_states(pid: int) -> list[str]:
    """The state letter of each thread of `pid` (proc(5)); [] when it is gone."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                out.append(f.read().rsplit(")", 1)[1].split()[0])   # the name may hold ')'
        except (OSError, IndexError):
            pass     # the thread ended
    return out


def app_command(name: str) -> list[str]:
    return [sys.executable, "-m", "emulator.host.app_runner", name]


class App:
    def __init__(self, name: str, command=app_command):
        self.name = name
        self.command = command
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.started_at = None
        self.last_hb = None
        self.want_run = True
        self.starved = False     # this silence already logged as starved

    def start(self):
        self.proc = subprocess.Popen(self.command(self.name), stdout=sys.stdout, stderr=sys.stderr)
        self.started_at, self.last_hb, self.starved = time.monotonic(), None, False

    def busy(self) -> bool:
        """A thread of the process is runnable (R) or in disk wait (D): it is waiting
        for the CPU or the disk, not hung."""
        return any(state in "RD" for state in thread_states(self.proc.pid))

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def silent_for(self, now: float) -> float:
        """Seconds past the heartbeat deadline (<= 0: fine); none in the start's grace."""
        if self.last_hb is None or now - self.started_at < FIRST_BEAT_S:
            return now - self.started_at - FIRST_BEAT_S
        return now - self.last_hb - DEADLOCK_S

    def info(self):
        running = self.running()
        return {"state": "running" if running else ("stopped" if not self.want_run else "restarting"),
                "pid": self.proc.pid if running else None, "restarts": self.restarts,
                "heartbeat_age_s": None if self.last_hb is None
                else round(time.monotonic() - self.last_hb, 3),
                "run": self.want_run}


class Monitor:
    def __init__(self, apps=APPS, command=app_command, port: int = MONITOR_PORT,
                 sysmgr_port: int = SYSMGR_PORT):
        self.apps = {name: App(name, command) for name in apps}
        self.events: list[dict] = []
        self.quitting = False
        self.sysmgr_port = sysmgr_port
        self.hb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.hb.bind(("127.0.0.1", port))

    def event(self, kind: str, app: str | None = None, **fields):
        e = {"t": time.time(), "kind": kind, "app": app, **fields}
        self.events = (self.events + [e])[-MAX_EVENTS:]
        state.log(APP, f"{kind} {app or ''} {fields or ''}")
        self.publish()

    def publish(self):
        state.write("monitor", {"apps": {n: a.info() for n, a in self.apps.items()},
                                "events": self.events, "quitting": self.quitting,
                                "deadlock_deadline_s": DEADLOCK_S,
                                "pid": os.getpid(), "updated": time.time()})

    def start_app(self, app: App, kind: str = "start"):
        app.start()
        self.event(kind, app.name, pid=app.proc.pid)

    def read_heartbeats(self, timeout: float):
        ready, _, _ = select.select([self.hb], [], [], timeout)
        while ready:
            data, _ = self.hb.recvfrom(4096)
            try:
                msg = json.loads(data)
                app = self.apps[msg["app"]]
                if app.proc is not None and msg.get("pid") == app.proc.pid:
                    app.last_hb, app.starved = time.monotonic(), False
            except (ValueError, KeyError, TypeError):
                pass   # not one of ours
            ready, _, _ = select.select([self.hb], [], [], 0)

    def check(self):
        now = time.monotonic()
        for app in self.apps.values():
            if not app.want_run or app.proc is None:
                continue
            code = app.proc.poll()
            over = app.silent_for(now) if code is None else 0
            if over > 0 and over <= BUSY_S - DEADLOCK_S and app.busy():
                if not app.starved:
                    app.starved = True
                    self.event("starved", app.name, pid=app.proc.pid,
                               silent_s=round(now - (app.last_hb or app.started_at), 3))
            elif over > 0:
                # deadlocked: SIGKILL works on a stopped process too
                self.event("deadlock", app.name, pid=app.proc.pid,
                           silent_s=round(now - (app.last_hb or app.started_at), 3))
                app.proc.kill()
                code = app.proc.wait()
            if code is None:
                continue
            # publish the death before restarting: sys_manager reads it to hand over
            self.event("crash", app.name, code=code)
            since = time.monotonic() - app.started_at
            if since < CRASH_BACKOFF:
                time.sleep(CRASH_BACKOFF - since)
            app.restarts += 1
            self.start_app(app, "restart")

    def apply_run_flags(self, flags: dict[str, bool]):
        """Run / Don't Run from the OAM (table app_run). Stopping the gateway or engine of
        the active host makes sys_manager hand over, as a crash would."""
        for name, run in flags.items():
            app = self.apps.get(name)
            if app is None or run == app.want_run:
                continue
            app.want_run = run
            if not run:
                self.stop_app(app)
                self.event("dont_run", name)
            else:
                self.start_app(app, "run")

    def stop_app(self, app: App):
        if app.running():
            app.proc.terminate()
            try:
                app.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                app.proc.kill()
                app.proc.wait()

    def quit(self):
        """Graceful quit: hand over (sys_manager releases the units and tells the peer),
        then stop the applications in reverse start order."""
        self.quitting = True
        self.event("quit")
        reply = Client().request([("127.0.0.1", self.sysmgr_port)], {"op": "quit"},
                                 timeout=2.0)
        self.event("handover", None, reply=reply)
        for app in reversed(list(self.apps.values())):
            app.want_run = False
            self.stop_app(app)
            self.event("stop", app.name)

    def start_all(self):
        for app in self.apps.values():
            self.start_app(app)

    def tick(self, flags=None):
        self.read_heartbeats(0.02)
        self.check()
        pending = flags.take() if flags else None
        if pending:
            self.apply_run_flags(pending)

    def run(self):
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        signal.signal(signal.SIGINT, lambda *_: stop.append(1))
        flags = RunFlags()
        flags.start()
        self.start_all()
        while not stop:
            self.tick(flags)
        self.quit()


class RunFlags(threading.Thread):
    """Reads this host's Run / Don't Run flags from the database in the background (a
    slow or lost database must never stall the monitor)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.host = os.environ.get("TB_HOST", "")
        self.latest: dict[str, bool] | None = None
        self.lock = threading.Lock()

    def run(self):
        try:
            from .db import Db
            from .settings import Settings
            db = Db.from_settings(Settings.from_env())
        except SystemExit:
            return    # no database settings (unit tests): everything runs
        while True:
            try:
                rows = db.run("SELECT app, run FROM app_run WHERE host = %s", (self.host,))
                with self.lock:
                    self.latest = {r["app"]: bool(r["run"]) for r in rows}
            except Exception:
                pass  # no table yet, or no database: keep the current flags
            time.sleep(RUN_FLAGS_EVERY)   # a period, not a wait for a condition

    def take(self) -> dict[str, bool] | None:
        with self.lock:
            latest, self.latest = self.latest, None
        return latest


def main():
    Monitor().run()


if __name__ == "__main__":
    main()
