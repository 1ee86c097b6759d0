"""Voice path redundancy: the unit relays each call's RTP over one of two voice paths
(a media relay per path, each pinned to one virtual port by source routing, see
ports.VirtualPorts). Both up: new calls are shared between them (sippy picks a relay at
random). One down: new calls take the other. Calls already on the lost path are not
moved, as the seed says: their media stop until the path returns.

A path is up while every one of its probe targets (the media peers' addresses on that
virtual port) answers an ARP probe sent out of the path's own interface every 200 ms
(RFC 5227: sender IP 0.0.0.0, so no peer's ARP cache changes), as Linux bonding's
arp_ip_target does. ARP, not ICMP: a kernel rate-limits its ICMP errors per source (one
a second by default), so a peer busy answering scans or media to closed ports would look
dead; every kernel answers ARP for its own address. The replies are read from a packet
socket bound to ETH_P_ARP on the interface, which sees a frame after the netdev ingress
hook, so a cut of the path (harness voice_path_cut) hides them as it would on a wire.
`PathState` is the rule (clock injected, unit-tested); `PathMonitor` the thread.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Callable, Optional

from .port_probe import ETH_P_ARP, is_reply_to, probe_frame

PROBE_S = 0.2
DOWN_AFTER_S = 1.0


def replier(frame: bytes) -> str:
    """The sender IP of an ARP frame (the peer that answers)."""
    return socket.inet_ntoa(frame[28:32])


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
                 on_change: Optional[Callable[[str, bool], None]] = None,
                 device: Callable[[str], str] = lambda name: f"vx{name}"):
        """paths: name -> (local ip, [probe target ips]); device(name) is the path's
        interface (ports.VirtualPorts names them vx<vlan id>)."""
        self.log, self.on_change = log, on_change
        self.states = {n: PathState(n, targets) for n, (_, targets) in paths.items()}
        self.socks = {}           # name -> (packet socket, the interface's MAC, targets)
        for name, (_, targets) in paths.items():
            dev = device(name)
            with open(f"/sys/class/net/{dev}/address") as f:
                mac = f.read().strip()
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
            s.bind((dev, ETH_P_ARP))
            s.setblocking(False)
            self.socks[name] = (s, mac, list(targets))
        self.last = {n: True for n in self.states}
        self.downs = {n: 0 for n in self.states}      # times each path was declared down
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="voice-paths", daemon=True)

    def start(self) -> "PathMonitor":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        for s, _, _ in self.socks.values():
            s.close()

    def up(self, name: str) -> bool:
        return self.last.get(name, True)

    def status(self) -> dict:
        return {n: ("up" if up else "down") for n, up in self.last.items()}

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, (s, mac, targets) in self.socks.items():
                self._read(name, s, mac)
                for t in targets:
                    try:
                        s.send(probe_frame(mac, t))
                    except OSError:
                        pass          # the interface is going away (the unit moves)
            for name, st in self.states.items():
                up = st.up()
                if up != self.last[name]:
                    self.last[name] = up
                    self.downs[name] += not up
                    self.log(f"voice path {name} {'up' if up else 'DOWN'}")
                    if self.on_change:
                        self.on_change(name, up)
            self._stop.wait(PROBE_S)

    def _read(self, name: str, s: socket.socket, mac: str) -> None:
        while True:
            try:
                frame = s.recv(128)
            except OSError:        # nothing more to read now (BlockingIOError), or gone
                return
            if is_reply_to(frame, mac):
                self.states[name].answered(replier(frame))
