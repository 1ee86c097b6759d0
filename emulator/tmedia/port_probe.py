"""ARP monitor of the VoIP ports, as Linux bonding's arp_interval / arp_ip_target.

Carrier alone misses a port whose link stays up while it passes no frames (a switch
port that hangs, a cable fault on the far side of a media converter). So each port
also probes the VoIP switch's address:

1. every INTERVAL_S each port sends an ARP probe (RFC 5227: sender IP 0.0.0.0, so no
   peer's ARP cache changes) for `target` from a MAC of its own (`probe_mac`), so the
   switches never learn the bond's MAC on the backup port;
2. a port is alive while a reply to its own probe MAC arrived within WINDOW_S; at start
   (and after its link comes back) it gets WINDOW_S of grace;
3. the bond treats a port as up only when it has carrier AND it is alive.

Replies are read from an ETH_P_ALL socket bound to the port (with a BPF filter for
ARP): packet taps run before the tc redirect that takes the active port's frames to the
bond, and before anything the port's own stack drops (ARP is off on the ports).
`ProbeState` is the rule (pure, fake clock in the tests); `PortProbe` the I/O.
"""
from __future__ import annotations

import ctypes
import hashlib
import socket
import struct
import threading
import time
from typing import Callable, Optional

INTERVAL_S = 0.1
WINDOW_S = 0.5
ETH_P_ALL, ETH_P_ARP = 0x0003, 0x0806
SO_ATTACH_FILTER = 26


def probe_mac(unit: str, port: str) -> str:
    h = hashlib.sha256(f"{unit}/{port}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in h[:5])


def probe_frame(src_mac: str, target_ip: str) -> bytes:
    m = bytes.fromhex(src_mac.replace(":", ""))
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + m + b"\0" * 4 + b"\0" * 6 + \
        socket.inet_aton(target_ip)
    return (b"\xff" * 6 + m + struct.pack("!H", ETH_P_ARP) + arp).ljust(60, b"\0")


def is_reply_to(frame: bytes, mac: str) -> bool:
    """An ARP reply addressed (target hardware address) to `mac`."""
    m = bytes.fromhex(mac.replace(":", ""))
    return (len(frame) >= 42 and frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02"
            and frame[32:38] == m)


class ProbeState:
    def __init__(self, ports, clock: Callable[[], float] = time.monotonic,
                 window: float = WINDOW_S):
        self.clock, self.window = clock, window
        now = clock()
        self.last_reply = {p: None for p in ports}
        self.grace_until = {p: now + window for p in ports}

    def replied(self, port: str) -> None:
        self.last_reply[port] = self.clock()

    def link_back(self, port: str) -> None:
        """The port's carrier came back: give it a window to answer again (rule 2)."""
        self.grace_until[port] = self.clock() + self.window

    def alive(self, port: str) -> bool:
        now = self.clock()
        last = self.last_reply.get(port)
        return now < self.grace_until.get(port, 0) or (last is not None and now - last <= self.window)

    def status(self) -> dict:
        now = self.clock()
        return {p: {"alive": self.alive(p),
                    "last_reply_ms": None if t is None else round((now - t) * 1000)}
                for p, t in self.last_reply.items()}


class PortProbe:
    def __init__(self, unit: str, ports, target: str, log: Callable[[str], None] = print):
        self.unit, self.ports, self.target, self.log = unit, tuple(ports), target, log
        self.state = ProbeState(self.ports)
        self.macs = {p: probe_mac(unit, p) for p in self.ports}
        self.socks: dict = {}
        self.stop = threading.Event()
        self.had_carrier: dict = {}

    def _sock(self, port: str) -> Optional[socket.socket]:
        s = self.socks.get(port)
        if s is None:
            try:
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                # BPF: ldh [12]; jeq #0x806 jt 0 jf 1; ret #65535; ret #0
                prog = struct.pack("HBBI" * 4, 0x28, 0, 0, 12, 0x15, 0, 1, ETH_P_ARP,
                                   0x06, 0, 0, 0xFFFF, 0x06, 0, 0, 0)
                cbuf = ctypes.create_string_buffer(prog)   # struct sock_fprog -> filter
                s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                             struct.pack("HL", 4, ctypes.addressof(cbuf)))   # the kernel copies it
                s.bind((port, ETH_P_ALL))
                s.setblocking(False)
            except OSError as exc:
                self.log(f"port probe {port}: {exc}")
                return None
            self.socks[port] = s
        return s

    def _close(self, port: str) -> None:
        s = self.socks.pop(port, None)
        if s is not None:
            s.close()

    def carrier_changed(self, port: str, carrier: bool) -> None:
        if carrier and not self.had_carrier.get(port, True):
            self.state.link_back(port)
            self._close(port)           # the interface went down: bind anew
        self.had_carrier[port] = carrier

    def alive(self, port: str) -> bool:
        return self.state.alive(port)

    def run(self) -> None:
        next_probe = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            for port in self.ports:
                s = self._sock(port)
                if s is None:
                    continue
                while True:
                    try:
                        frame = s.recv(128)
                    except BlockingIOError:
                        break
                    except OSError:
                        self._close(port)
                        break
                    if is_reply_to(frame, self.macs[port]):
                        self.state.replied(port)
                if now >= next_probe:
                    try:
                        s.send(probe_frame(self.macs[port], self.target))
                    except OSError:       # link down: carrier says so already
                        self._close(port)
            if now >= next_probe:
                next_probe = now + INTERVAL_S
            self.stop.wait(0.01)

    def start(self) -> "PortProbe":
        self.state = ProbeState(self.ports)      # the grace window starts now (rule 2)
        threading.Thread(target=self.run, name="port-probe", daemon=True).start()
        return self

    def status(self) -> dict:
        ports = self.state.status()
        for p, mac in self.macs.items():
            ports[p]["mac"] = mac
        return {"target": self.target, "ports": ports}
