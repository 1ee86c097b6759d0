"""The local link between a unit's board (control agent, ports, watchdog) and its SIP
application process, over UDP JSON on 127.0.0.1 (port 7001 by default).

The board sends `tick` every 100 ms with the running lease (controller and gateway
addresses: where route requests go) and the admission verdict (a disabled SIP stack
refuses new calls); the application answers from this link's thread with its counters
and the age of its reactor's last beat, and that answer is the heartbeat the on-board
monitor watches (a stopped process answers nothing, a stuck reactor's beat ages). `calls` and `close`
are the control agent's requests, carried out on the reactor.
"""
from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from typing import Callable, Optional

TICK_S = 0.1
REACTOR_WAIT_S = 0.5


def _send(sock, msg, addr=None):
    data = json.dumps(msg, separators=(",", ":")).encode()
    try:
        sock.sendto(data, addr) if addr else sock.send(data)
    except OSError:
        pass


class BoardLink:
    """The application's side: serves the board's requests on a thread of its own."""

    def __init__(self, port: int, log: Callable[[str], None] = print):
        self.port, self.log = port, log
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self._lease = None
        self._admission = None
        self.stack = self.counters = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="board-link", daemon=True)

    def attach(self, stack, counters) -> None:
        self.stack, self.counters = stack, counters

    # what the SIP stack asks (on the reactor): plain reads, no lock
    def current_lease(self) -> Optional[tuple]:
        return self._lease

    def admission(self) -> Optional[tuple]:
        return self._admission

    def start(self) -> "BoardLink":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65000)
                msg = json.loads(data)
                if not isinstance(msg, dict):
                    raise ValueError("not an object")
            except socket.timeout:
                continue
            except (OSError, ValueError):
                if self._stop.is_set():
                    return
                continue
            try:
                reply = self.handle(msg)
            except TimeoutError:
                continue          # the reactor is stuck: no heartbeat, the board will see it
            except Exception as exc:
                reply = {"ok": False, "error": f"internal error: {exc!r}"}
            reply["seq"] = msg.get("seq")
            _send(self.sock, reply, addr)

    def handle(self, msg: dict) -> dict:
        op = msg.get("op")
        if op == "tick":
            lease = msg.get("lease")
            self._lease = None if not lease else (lease[0], tuple(tuple(g) for g in lease[1]))
            adm = msg.get("admission")
            self._admission = None if not adm else (int(adm[0]), str(adm[1]))
            # answered here, off the reactor: a reactor busy with calls must not look
            # deadlocked; its own liveness is the age of its beat (overload.ReactorBeat)
            return {"ok": True, "media_ready": self.stack.media_ready(),
                    "reactor_age_s": round(self.stack.beat.age(), 3),
                    "counters": self.counters.snapshot()}
        if op == "calls":
            return {"ok": True, "calls": self.stack.on_reactor(self.stack.live_call_info, REACTOR_WAIT_S)}
        if op == "close":
            call_id = str(msg.get("call_id"))
            return {"ok": True, "found": self.stack.on_reactor(lambda: self.stack.close_call(call_id),
                                                                REACTOR_WAIT_S)}
        return {"ok": False, "error": f"unknown op {op!r}"}


class AppLink:
    """The board's side. `tick` and `drain` run on the board's loop; `list_calls` and
    `close_call` on the control agent's thread (their own socket, so replies never mix)."""

    def __init__(self, port: int, clock: Callable[[], float] = time.monotonic):
        self.addr = ("127.0.0.1", port)
        self.clock = clock
        self.tick_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tick_sock.setblocking(False)
        self.req_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._req_lock = threading.Lock()
        self._seq = itertools.count(1)
        self.last_reply: Optional[dict] = None

    def close(self) -> None:
        self.tick_sock.close()
        self.req_sock.close()

    def tick(self, lease, admission) -> None:
        _send(self.tick_sock, {"op": "tick", "seq": next(self._seq),
                               "lease": None if lease is None else [lease[0], [list(g) for g in lease[1]]],
                               "admission": None if admission is None else list(admission)}, self.addr)

    def drain(self) -> bool:
        """Read the heartbeats that arrived; True when there was at least one."""
        got = False
        while True:
            try:
                data = self.tick_sock.recv(65000)
            except (BlockingIOError, OSError):
                return got
            try:
                reply = json.loads(data)
            except ValueError:
                continue
            if isinstance(reply, dict) and reply.get("ok"):
                self.last_reply, got = reply, True

    def counters(self) -> dict:
        return dict((self.last_reply or {}).get("counters") or {})

    def reactor_age(self) -> float:
        """Seconds since the application's reactor last ran, at its last heartbeat."""
        age = (self.last_reply or {}).get("reactor_age_s")
        return float(age) if isinstance(age, (int, float)) and not isinstance(age, bool) else 0.0

    def _request(self, msg: dict, timeout: float) -> dict:
        with self._req_lock:
            seq = next(self._seq)
            _send(self.req_sock, dict(msg, seq=seq), self.addr)
            deadline = self.clock() + timeout
            while True:
                left = deadline - self.clock()
                if left <= 0:
                    raise TimeoutError("the SIP application did not answer in time")
                self.req_sock.settimeout(left)
                try:
                    reply = json.loads(self.req_sock.recv(65000))
                except socket.timeout:
                    raise TimeoutError("the SIP application did not answer in time") from None
                except (OSError, ValueError):
                    continue
                if isinstance(reply, dict) and reply.get("seq") == seq:
                    if not reply.get("ok"):
                        raise TimeoutError(str(reply.get("error")))
                    return reply

    def list_calls(self, timeout: float) -> list:
        return self._request({"op": "calls"}, timeout)["calls"]

    def close_call(self, call_id: str, timeout: float) -> bool:
        return bool(self._request({"op": "close", "call_id": call_id}, timeout)["found"])
