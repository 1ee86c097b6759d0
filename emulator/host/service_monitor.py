"""The Toolpack service: starts the four applications, restarts a crashed one at once,
and on a graceful quit hands the active role to the peer before stopping them in order.

Publishes RUN_DIR/monitor.json: per application its state, pid and restart count, and a
list of timestamped events (starts, crashes, restarts, quit)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from . import state
from .settings import APPS, SYSMGR_PORT
from .udp import Client

APP = "toolpack"
CRASH_BACKOFF = 0.2       # a crash-looping app is restarted at most this often
MAX_EVENTS = 200


class App:
    def __init__(self, name: str):
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.started_at = None
        self.last_exit = None
        self.want_run = True

    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-m", f"emulator.host.{self.name}"],
                                     stdout=sys.stdout, stderr=sys.stderr)
        self.started_at = time.time()

    def info(self):
        running = self.proc is not None and self.proc.poll() is None
        return {"state": "running" if running else ("stopped" if not self.want_run else "restarting"),
                "pid": self.proc.pid if running else None, "restarts": self.restarts,
                "started_at": self.started_at, "run": self.want_run}


class Monitor:
    def __init__(self):
        self.apps = {name: App(name) for name in APPS}
        self.events: list[dict] = []
        self.quitting = False

    def event(self, kind: str, app: str | None = None, **fields):
        e = {"t": time.time(), "kind": kind, "app": app, **fields}
        self.events = (self.events + [e])[-MAX_EVENTS:]
        state.log(APP, f"{kind} {app or ''} {fields or ''}")
        self.publish()

    def publish(self):
        state.write("monitor", {"apps": {n: a.info() for n, a in self.apps.items()},
                                "events": self.events, "quitting": self.quitting,
                                "pid": os.getpid(), "updated": time.time()})

    def start_all(self):
        for app in self.apps.values():
            app.start()
            self.event("start", app.name, pid=app.proc.pid)

    def check(self):
        for app in self.apps.values():
            if not app.want_run or app.proc is None:
                continue
            code = app.proc.poll()
            if code is None:
                continue
            app.last_exit = time.time()
            # publish the death before restarting: sys_manager reads it to hand over
            self.event("crash", app.name, code=code)
            since = time.time() - (app.started_at or 0)
            if since < CRASH_BACKOFF:
                time.sleep(CRASH_BACKOFF - since)
            app.start()
            app.restarts += 1
            self.event("restart", app.name, pid=app.proc.pid, restarts=app.restarts)

    def quit(self):
        """Graceful quit: hand over (sys_manager releases the units and tells the peer),
        then stop the applications in reverse start order."""
        self.quitting = True
        self.event("quit")
        reply = Client().request([("127.0.0.1", SYSMGR_PORT)], {"op": "quit"}, timeout=2.0)
        self.event("handover", None, reply=reply)
        for app in reversed(list(self.apps.values())):
            app.want_run = False
            if app.proc and app.proc.poll() is None:
                app.proc.terminate()
                try:
                    app.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    app.proc.kill()
                    app.proc.wait()
            self.event("stop", app.name)

    def run(self):
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        signal.signal(signal.SIGINT, lambda *_: stop.append(1))
        self.start_all()
        while not stop:
            self.check()
            time.sleep(0.02)
        self.quit()


def main():
    Monitor().run()


if __name__ == "__main__":
    main()
