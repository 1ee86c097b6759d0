"""Runs one Toolpack application for the service monitor, with a heartbeat thread.

A heartbeat every HEARTBEAT_S to the monitor's UDP port on loopback says the process is
scheduled; a deadlocked process (the test's SIGSTOP stops every thread) falls silent and
the monitor kills and restarts it. Running the application through this wrapper keeps
the heartbeat out of the applications themselves.

    python -m emulator.host.app_runner <app>
"""
from __future__ import annotations

import json
import os
import runpy
import socket
import sys
import threading
import time

from .settings import APPS

MONITOR_PORT = 7300
# five beats in a deadlock period: a busy machine delaying one or two is no deadlock
HEARTBEAT_S = min(0.2, int(os.environ.get("TB_DEADLOCK_MS", "500")) / 5000.0)


def heartbeat(app: str, port: int = MONITOR_PORT) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    msg = json.dumps({"op": "hb", "app": app, "pid": os.getpid()}).encode()
    while True:
        try:
            sock.sendto(msg, ("127.0.0.1", port))
        except OSError:
            pass     # the monitor restarting: it will hear the next one
        time.sleep(HEARTBEAT_S)   # a period, not a wait for a condition


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in APPS:
        raise SystemExit(f"usage: python -m emulator.host.app_runner {{{','.join(APPS)}}}")
    app = sys.argv[1]
    threading.Thread(target=heartbeat, args=(app,), daemon=True, name="heartbeat").start()
    sys.argv = [app]
    runpy.run_module(f"emulator.host.{app}", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
