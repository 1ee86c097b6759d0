"""Host control: what an operator does on the host's shell, for the harness to run with
`docker exec <host> python -m emulator.host.ctl <what> <action>`:

    mysql   start | shutdown | kill | status
    service start | quit | status          (the Toolpack service: the service monitor)

The host's init serves the requests on a unix socket (it is the parent of mariadbd and of
the service, so only it can start, stop and reap them). One JSON line each way:
    -> {"what": "mysql", "action": "kill"}
    <- {"ok": true, "message": "mysql killed (pid 42, ...)", "data": {...}}
Prints the message (or, with --json, the whole reply); exit code 0 on success, 1 on a
refused or failed request, 2 when init cannot be reached."""
from __future__ import annotations

import argparse
import json
import os
import socket
import socketserver
import sys
import threading
from typing import Callable

from .settings import RUN_DIR

SOCKET_PATH = os.path.join(RUN_DIR, "init.sock")
ACTIONS = {"mysql": ("start", "shutdown", "kill", "status"),
           "service": ("start", "quit", "status")}
REPLY_TIMEOUT = 180.0    # a clean shutdown or a start may take a while; never forever

# a handler returns (message, data) or raises an exception whose text is the message
Handler = Callable[[], tuple[str, dict]]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(handlers: dict[tuple[str, str], Handler], path: str | None = None) -> _Server:
    """Start the control server in a thread; returns it (shutdown() to stop)."""

    class Handle(socketserver.StreamRequestHandler):
        def handle(self):
            try:
                req = json.loads(self.rfile.readline() or b"{}")
                fn = handlers.get((req.get("what"), req.get("action")))
                if fn is None:
                    raise ValueError(f"unknown request {req.get('what')!r} {req.get('action')!r}")
                message, data = fn()
                reply = {"ok": True, "message": message, "data": data}
            except Exception as exc:
                reply = {"ok": False, "message": str(exc) or type(exc).__name__, "data": {}}
            self.wfile.write((json.dumps(reply) + "\n").encode())

    path = path or SOCKET_PATH
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)         # left by an earlier init of this container
    server = _Server(path, Handle)
    os.chmod(path, 0o600)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True, name="ctl-server").start()
    return server


def request(what: str, action: str, path: str | None = None,
            timeout: float = REPLY_TIMEOUT) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path or SOCKET_PATH)
        sock.sendall((json.dumps({"what": what, "action": action}) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    if not buf:
        raise ConnectionError("init closed the control connection without a reply")
    return json.loads(buf)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m emulator.host.ctl",
                                description="control the host's MySQL server and Toolpack service")
    p.add_argument("what", choices=sorted(ACTIONS))
    p.add_argument("action")
    p.add_argument("--json", action="store_true", help="print the whole reply as JSON")
    args = p.parse_args(argv)
    if args.action not in ACTIONS[args.what]:
        print(f"error: {args.what} has no action {args.action!r} "
              f"(one of: {', '.join(ACTIONS[args.what])})", file=sys.stderr)
        return 1
    try:
        reply = request(args.what, args.action)
    except TimeoutError:
        print(f"error: no reply from the host's init within {REPLY_TIMEOUT:.0f} s", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: host init not reachable on {SOCKET_PATH}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(reply))
    elif reply["ok"]:
        print(reply["message"])
    else:
        print(f"error: {reply['message']}", file=sys.stderr)
    return 0 if reply["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
