"""Voice path redundancy: the unit relays each call's RTP over one of two voice paths
(a media relay per path, each pinned to one virtual port by source routing, see
ports.VirtualPorts). Both up: new calls are shared between them (sippy picks a relay at
random). One down: new calls take the other. Calls already on the lost path are not
moved, as the seed says: their media stop until the path returns.

A path is up while every one of its probe targets (the media peers' addresses on that
virtual port) answers: a UDP datagram to the discard port every 200 ms, and the
ICMP port unreachable that comes back (ECONNREFUSED on the connected socket) is the
answer. `PathState` is the rule (clock injected, unit-tested); `PathMonitor` the thread.
"""
from __future__ import annotations

import errno
import socket
import threading
import time
from typing import Callable, Optional

PROBE_PORT = 9          # discard: nobody listens, so the peer's kernel answers ICMP
PROBE_S = 0.2
DOWN_AFTER_S = 1.0


class PathState:
    def __init__(self, name: str, targets: list, clock: Callable[[], float] = time.monotonic):
        self.name, self.targets, self.clock = name, list(targets), clock
        self.heard: dict = {}
        self.started = clock()

    def answered(self, target: str) -> None:
        self.heard[target] = self.clock()

    def up(self) -> bool:
        """Every target answered within DOWN_AFTER_S (at start: given DOWN_AFTER_S)."""
        now = self.clock()
        if now - self.started < DOWN_AFTER_S:
            return True
        return all(now - self.heard.get(t, -1e9) <= DOWN_AFTER_S for t in self.targets)


class PathMonitor:
    def __init__(self, paths: dict, log: Callable[[str], None] = print,
                 on_change: Optional[Callable[[str, bool], None]] = None):
        """paths: name -> (local ip, [probe target ips])."""
        self.log, self.on_change = log, on_change
        self.states = {n: PathState(n, targets) for n, (_, targets) in paths.items()}
        self.socks = {}
        for name, (local, targets) in paths.items():
            for t in targets:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((local, 0))
                s.connect((t, PROBE_PORT))
                s.setblocking(False)
                self.socks[s] = (name, t)
        self.last = {n: True for n in self.states}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="voice-paths", daemon=True)

    def start(self) -> "PathMonitor":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        for s in self.socks:
            s.close()

    def up(self, name: str) -> bool:
        return self.last.get(name, True)

    def status(self) -> dict:
        return {n: ("up" if up else "down") for n, up in self.last.items()}

    def _run(self) -> None:
        while not self._stop.is_set():
            for s, (name, target) in self.socks.items():
                try:
                    s.recv(64)
                except OSError as exc:
                    if exc.errno == errno.ECONNREFUSED:
                        self.states[name].answered(target)
                try:
                    s.send(b"tb-voice-path-probe")
                except OSError as exc:
                    if exc.errno == errno.ECONNREFUSED:   # the error of an earlier probe
                        self.states[name].answered(target)
            for name, st in self.states.items():
                up = st.up()
                if up != self.last[name]:
                    self.last[name] = up
                    self.log(f"voice path {name} {'up' if up else 'DOWN'}")
                    if self.on_change:
                        self.on_change(name, up)
            self._stop.wait(PROBE_S)
