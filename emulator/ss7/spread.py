"""One signalling point spread over two TMedia units: each unit ends one link of the
linkset to the far end, MTP3 runs on both units, ISUP and TCAP are active on one unit and
standby on the other (the seed's SS7 redundancy, N+1 with two units).

Each unit runs a `Node`. The two nodes talk over the mate connection (JSON lines over
TCP on the control network, a beat every BEAT_S; silent for DEAD_S or closed is the
other unit lost):

- Every link event of a unit's own link goes to the other unit (`ReportingLink`): each
  MSU sent with its FSN, each acknowledgement, each MSU accepted with its FSN and its
  bytes, each state. So each unit holds a `RemoteLink` for the other unit's link with
  what MTP3 needs to change its traffic over: the FSN of the last MSU accepted from the
  far end, the MSUs sent and not acknowledged, the ones asked for and not sent yet.
- The active node runs the MTP3 procedures (mtp3.Linkset) over both links: its own, and
  the other unit's through its RemoteLink (an MSU for that link is sent by the other
  unit; an MSU accepted there is delivered here). Load sharing by SLS, changeover and
  changeback are mtp3.Linkset's, with their messages on the wire.
- ISUP and TCAP run on the active node; every circuit and dialogue change goes to the
  standby, which applies it without acting on it.
- The active's unit lost: the standby takes over. It starts MTP3 with its own link
  (which stays in service: its sequence numbers go on) and the lost unit's link as last
  reported, fails that one (changeover: COO with the FSN of the last MSU the lost unit
  accepted, then the MSUs it had sent and the far end had not acknowledged, sent again
  on the surviving link), marks the lost unit's trunk group down (the seed gives trunks
  no HA) and lets ISUP restart what its circuits wait for (isup.Isup.take_over).
- The standby's unit lost: the active changes that link's traffic over and marks its
  trunk group down. A unit that comes back is standby: it is sent the ISUP and TCAP
  states, its trunk group comes back up, its link aligns again and MTP3 changes back.

Which node is active when both start: the one already active, else the preferred one
(`preferred=True`), else the lower name. A node that hears no other unit within
ALONE_AFTER_S goes active alone.

The standby's own link goes on accepting the far end's MSUs for the active; each one is
kept until the active confirms it (rx_done). At a takeover the unconfirmed ones are
replayed to ISUP and TCAP, which drop a replayed message that their state shows handled
already (a REL for an idle circuit gets no second RLC): nothing the far end sent on the
surviving link is lost while the loss is being detected (DEAD_S when a unit is powered
off and no FIN comes).

The operator's SS7 stack flag of a unit (`set_admit`, from the board's configuration):
disabled, the active's ISUP releases each new IAM on that unit's trunk group with cause
63 (service not available); its calls up go on. Each node tells the other its own unit's
flag (in the hello and on each change), so whichever node is active applies both.

SIP-ISUP interworking (`--sip`, interwork.py): each unit's interworking is the SIP side
of its own trunk group's calls. Its orders (place, answer, release) go to the active's
ISUP (`iw_command`, over the mate connection as "iw_cmd" when this node is standby; held
IW_HOLD_S while there is no active to take them), and ISUP's events of each call go to
the interworking of the unit whose circuit it is ("iw_ev").

What is not covered: the mate connection is one TCP connection; cut while both units
live, the standby takes over and two nodes run MTP3 (the far end then sees two
changeover orders). An MSU the active's own link accepted in its last milliseconds, not
yet handled, is acknowledged to the far end and lost (ISUP's timers recover the call's
state).

Locks: one lock per node is its links' and its linkset's (mtp3.Linkset(lock=...)). ISUP
and TCAP take their own lock first and then the linkset's (they send while holding
theirs), so nothing here calls into them while holding the node's lock.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import socket
import threading
import time
from collections import deque
from dataclasses import asdict
from functools import partial
from typing import Callable, Optional

from emulator.tmedia.log import log as log_line

from . import m2pa
from .isup import SERVICE_NOT_AVAILABLE, Isup
from .mtp3 import Linkset, Mtp3Error, Port, decode_msu
from .peer import cic_ranges, point_code, positive
from .tcap import Tcap

BEAT_S, DEAD_S = 0.1, 0.5
IW_HOLD_S = 2.0          # an interworking order waits this long for an active node
ALONE_AFTER_S = 1.0
RETRY_S = 0.2

STARTING, ACTIVE, STANDBY = "starting", "active", "standby"


class ReportingLink(m2pa.Link):
    """An m2pa.Link that tells `report` what the other unit needs to stand in for it."""

    def __init__(self, sock, name, *, report: Callable[[dict], None], **kw):
        self.report = report
        super().__init__(sock, name, **kw)

    def _set_state(self, state):
        self.report({"ev": "state", "state": state, "failure": self.failure})
        super()._set_state(state)

    def _transmit(self, msu):
        super()._transmit(msu)
        self.report({"ev": "tx", "fsn": self._fsn, "msu": msu.hex()})

    def _ack(self, bsn):
        before = self._acked
        super()._ack(bsn)
        if self._acked != before:
            self.report({"ev": "ack", "acked": self._acked})

    def _handle(self, f):
        before = self._rx
        super()._handle(f)
        if self._rx != before:
            self.report({"ev": "rx", "fsn": self._rx, "msu": f.msu.hex()})

    def snapshot(self) -> dict:
        """What a RemoteLink starts from (under the lock)."""
        return {"state": self.state, "failure": self.failure,
                "served": any(s == m2pa.IN_SERVICE for _, s in self.states),
                "fsn": self._fsn, "acked": self._acked, "rx": self._rx,
                "unacked": [[f, m.hex()] for f, m in self._unacked],
                "waiting": [m.hex() for m in self._waiting]}


class RemoteLink:
    """The other unit's link as MTP3 here sees it, kept from that unit's reports. It has
    m2pa.Link's face for mtp3.Linkset: state and states, send (the other unit sends it),
    last_accepted, retrieve and unacknowledged for a changeover, fail."""

    def __init__(self, name: str, gen: int, lock, snap: Optional[dict] = None,
                 send: Optional[Callable[[bytes], None]] = None,
                 clock: Callable[[], float] = time.monotonic):
        snap = snap or {}
        self.name, self.gen, self.lock, self.clock, self._send = name, gen, lock, clock, send
        self.on_msu = self.on_state = None
        self.state, self.failure = snap.get("state", m2pa.OUT), snap.get("failure")
        self.states = [(clock(), self.state)]
        if snap.get("served") and self.state != m2pa.IN_SERVICE:
            self.states.insert(0, (clock(), m2pa.IN_SERVICE))
        self.failed_at: Optional[float] = None
        self._fsn, self._acked, self._rx = snap.get("fsn", -1), snap.get("acked", -1), snap.get("rx", -1)
        self._unacked = deque((f, bytes.fromhex(m)) for f, m in snap.get("unacked", []))
        self._pending = deque(bytes.fromhex(m) for m in snap.get("waiting", []))
        self.counters = {"msus_tx": 0, "msus_rx": 0}

    # -- m2pa.Link's face ---------------------------------------------------------------

    def send(self, msu: bytes) -> None:
        with self.lock:
            if self.state != m2pa.IN_SERVICE or self._send is None:
                raise m2pa.LinkUnavailable(f"link {self.name} is {self.state} on the other unit")
            self._pending.append(msu)
            self._send(msu)

    def stop(self) -> None:
        """The other unit ends its link itself."""

    def fail(self, reason: str) -> None:
        with self.lock:
            if self.state != m2pa.FAILED:
                self.failure, self.failed_at = reason, self.clock()
                self._set(m2pa.FAILED)

    def last_accepted(self) -> int:
        with self.lock:
            return self._rx % m2pa.SEQ_MOD

    def retrieve(self, peer_fsn: Optional[int], bits: int = 24) -> Optional[list[bytes]]:
        """As m2pa.Link.retrieve, from what the other unit reported."""
        with self.lock:
            return m2pa.retrieve(self._unacked, self._pending, self._acked, self._fsn,
                                 peer_fsn, bits)

    def unacknowledged(self) -> int:
        with self.lock:
            return len(self._unacked) + len(self._pending)

    def status(self) -> dict:
        with self.lock:
            return {"state": self.state, "failure": self.failure, "on": "the other unit",
                    "for_s": round(self.clock() - self.states[-1][0], 3),
                    "fsn_tx": self._fsn % m2pa.SEQ_MOD, "acked": self._acked % m2pa.SEQ_MOD,
                    "accepted": self._rx % m2pa.SEQ_MOD, "unacknowledged": len(self._unacked),
                    "waiting": len(self._pending), **self.counters}

    # -- the other unit's reports (under the lock) ---------------------------------------

    def _set(self, state: str) -> None:
        self.state = state
        self.states.append((self.clock(), state))
        if self.on_state:
            self.on_state(self, state)

    def on_report(self, ev: dict) -> None:
        kind = ev["ev"]
        if kind == "state":
            if ev["state"] == m2pa.FAILED:
                self.failure, self.failed_at = ev.get("failure"), self.clock()
            if ev["state"] != self.state:
                self._set(ev["state"])
        elif kind == "tx":
            msu = bytes.fromhex(ev["msu"])
            if self._pending and self._pending[0] == msu:
                self._pending.popleft()          # one this unit asked for
            self._unacked.append((ev["fsn"], msu))
            self._fsn = ev["fsn"]
            self.counters["msus_tx"] += 1
        elif kind == "ack":
            self._acked = ev["acked"]
            while self._unacked and self._unacked[0][0] <= self._acked:
                self._unacked.popleft()
        elif kind == "rx":
            self._rx = ev["fsn"]
            self.counters["msus_rx"] += 1
            if self.on_msu and self.state == m2pa.IN_SERVICE:
                self.on_msu(self, bytes.fromhex(ev["msu"]))


class _Mate:
    """One mate connection: a writer (and its beats) and a reader."""

    def __init__(self, sock: socket.socket, on_line: Callable[[dict], None],
                 on_lost: Callable[["_Mate"], None]):
        self.sock, self.on_line, self.on_lost = sock, on_line, on_lost
        self.out: "queue.SimpleQueue[Optional[bytes]]" = queue.SimpleQueue()
        self.closed = self.quiet = False
        m2pa.configure_socket(sock)
        sock.settimeout(DEAD_S)

    def start(self) -> None:
        """After the hello is queued: nothing read may act before ours went out."""
        threading.Thread(target=self._write, daemon=True, name="ss7-mate-tx").start()
        threading.Thread(target=self._read, daemon=True, name="ss7-mate-rx").start()

    def send(self, msg: dict) -> None:
        if not self.closed:
            self.out.put(json.dumps(msg, separators=(",", ":")).encode() + b"\n")

    def close(self, lost: bool = False) -> None:
        """Our end closes it (the reader reports nothing), or `lost`: it broke under us
        (the reader reports the loss once it ends)."""
        if not self.closed:
            self.closed, self.quiet = True, not lost
            self.out.put(None)
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _write(self) -> None:
        beat = b'{"op":"beat"}\n'
        while True:
            try:
                data = self.out.get(timeout=BEAT_S)
            except queue.Empty:
                data = beat
            if data is None:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self.close(lost=True)
                return

    def _read(self) -> None:
        buf = b""
        try:
            while not self.closed:
                try:
                    data = self.sock.recv(65536)
                except OSError:           # DEAD_S without even a beat, or reset
                    break
                if not data:
                    break
                buf += data
                *lines, buf = buf.split(b"\n")
                try:
                    for line in lines:
                        msg = json.loads(line)
                        if msg.get("op") != "beat":
                            self.on_line(msg)
                except (ValueError, KeyError, TypeError):
                    break                 # not our protocol: the connection is useless
        finally:
            self.close(lost=True)
            self.sock.close()
            if not self.quiet:
                self.on_lost(self)


class Node:
    """This unit's part of the signalling point (see the module docstring).

    slc: this unit's link, whose far end connects to `link_listen`; mate_slc: the other
    unit's. groups: ISUP trunk groups by unit name (a lost unit's group goes down)."""

    def __init__(self, name: str, mate_name: str, opc: int, dpc: int, *, slc: int, mate_slc: int,
                 link_listen: tuple[str, int], groups: dict, preferred: bool = False,
                 mate_listen: Optional[tuple[str, int]] = None,
                 mate_connect: Optional[tuple[str, int]] = None,
                 proving_s: float = m2pa.PROVING_S, isup_kw: Optional[dict] = None,
                 tcap_kw: Optional[dict] = None, log: Optional[Callable[[str], None]] = None,
                 alone_after_s: float = ALONE_AFTER_S, interworking: bool = False):
        if (mate_listen is None) == (mate_connect is None):
            raise ValueError("a node either listens for its mate or connects to it")
        if mate_name not in groups or name not in groups:
            raise ValueError("each unit needs its trunk group")
        self.name, self.mate_name, self.opc, self.dpc = name, mate_name, opc, dpc
        self.slc, self.mate_slc, self.preferred = slc, mate_slc, preferred
        self.proving_s, self.alone_after_s = proving_s, alone_after_s
        self.log = log or partial(log_line, f"ss7-{name}")
        self.lock = threading.RLock()
        self.role = STARTING
        self.local: Optional[ReportingLink] = None
        self.remote: Optional[RemoteLink] = None
        self.ls: Optional[Linkset] = None
        self.mate: Optional[_Mate] = None
        self._gen = 0
        self._unconfirmed: deque = deque()      # (gen, fsn, msu hex) accepted while standby
        self.takeovers: list[dict] = []
        self.admits = {name: True, mate_name: True}    # each unit's SS7 stack enabled
        self.interworking = interworking   # both units' calls have a SIP side (interwork.py)
        self.iw = None                     # this unit's Interworking, set before start()
        self._iw_held: list[dict] = []     # its orders while there is no active to take them
        self.isup = Isup(name, opc, dpc, groups, on_update=partial(self._replicate, "isup"),
                         on_event=self._isup_event,
                         on_call_end=partial(self._isup_event, "end"), **(isup_kw or {}))
        self.tcap = Tcap(name, opc, dpc, on_update=partial(self._replicate, "tcap"), **(tcap_kw or {}))
        self._stopped = threading.Event()
        self._link_server = socket.create_server(link_listen)
        self._mate_server = socket.create_server(mate_listen) if mate_listen else None
        self._mate_connect = mate_connect
        self._threads: list[threading.Thread] = []

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> "Node":
        self._started = time.monotonic()
        loops = [self._accept_links, self._alone_timer]
        loops.append(self._accept_mates if self._mate_server else self._connect_mate)
        for fn in loops:
            t = threading.Thread(target=fn, daemon=True, name=f"ss7-{self.name}-{fn.__name__}")
            self._threads.append(t)
            t.start()
        return self

    def link_port(self) -> int:
        return self._link_server.getsockname()[1]

    def mate_port(self) -> int:
        return self._mate_server.getsockname()[1]

    def stop(self) -> None:
        self._stopped.set()
        for s in (self._link_server, self._mate_server):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        with self.lock:
            mate, self.mate = self.mate, None
            if self.ls is not None:
                self.ls.stop()
            if self.local is not None:
                self.local.stop()
        if mate is not None:
            mate.close()
        self.isup.stop()
        self.tcap.stop()
        for t in self._threads:
            t.join(2.0)

    # -- the operator's SS7 stack flag ----------------------------------------------------

    def set_admit(self, enabled: bool) -> None:
        """This unit's SS7 stack enabled or disabled (new calls on its trunk group
        refused); the other unit is told, whichever node is active applies it."""
        with self.lock:
            if self.admits[self.name] == enabled:
                return
            self.admits[self.name] = enabled
            mate = self.mate
        self.log(f"SS7 stack {'enabled' if enabled else 'disabled'}: new calls on "
                 f"{self.name}'s trunk group {'accepted' if enabled else 'refused'}")
        if mate is not None:
            mate.send({"op": "admit", "unit": self.name, "enabled": enabled})
        self._apply_admits()

    def _apply_admits(self) -> None:      # not under the node's lock (ISUP's is taken)
        with self.lock:
            admits = dict(self.admits)
        for unit, enabled in admits.items():
            self.isup.set_refusing(unit, None if enabled else SERVICE_NOT_AVAILABLE)

    # -- status ---------------------------------------------------------------------------

    def status(self) -> dict:
        with self.lock:
            local = self.local.status() if self.local else {"state": m2pa.OUT}
            remote = self.remote.status() if self.remote else None
            mtp3 = self.ls.status() if self.ls else None
            out = {"unit": self.name, "role": self.role, "mate": self.mate_name,
                   "ss7_enabled": dict(self.admits),
                   "mate_connected": self.mate is not None, "opc": self.opc, "dpc": self.dpc,
                   "link": {"slc": self.slc, **local},
                   "mate_link": {"slc": self.mate_slc, **remote} if remote else None,
                   "mtp3": mtp3, "takeovers": list(self.takeovers)}
        out["isup"] = self.isup.status()
        if self.iw is not None:
            out["interworking"] = self.iw.status()
        return out

    # -- this unit's link -----------------------------------------------------------------

    def _accept_links(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self._link_server.accept()
            except OSError:
                return
            with self.lock:
                if self._stopped.is_set():
                    sock.close()
                    return
                old = self.local
                if old is not None and old.state not in (m2pa.FAILED, m2pa.OUT):
                    old.fail("replaced by a new connection")
                self._gen += 1
                link = ReportingLink(sock, f"{self.name}/{self.slc}", lock=self.lock,
                                     proving_s=self.proving_s,
                                     report=partial(self._report, self._gen))
                self.local = link
                if self.ls is not None:
                    self.ls.adopt(self.slc, link)
                link.start()

    def _report(self, gen: int, ev: dict) -> None:     # under the lock
        if ev["ev"] == "rx" and self.role != ACTIVE:
            # kept until the active says it has it: a takeover delivers the rest
            self._unconfirmed.append((gen, ev["fsn"], ev["msu"]))
        if self.mate is not None:
            self.mate.send({"op": "report", "gen": gen, **ev})

    # -- the mate -------------------------------------------------------------------------

    def _accept_mates(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self._mate_server.accept()
            except OSError:
                return
            self._mate_up(sock)

    def _connect_mate(self) -> None:
        while not self._stopped.is_set():
            with self.lock:
                connected = self.mate is not None
            if not connected:
                try:
                    sock = socket.create_connection(self._mate_connect, timeout=RETRY_S * 5)
                except OSError:
                    sock = None
                if sock is not None:
                    self._mate_up(sock)
            self._stopped.wait(RETRY_S)

    def _mate_up(self, sock: socket.socket) -> None:
        if self._stopped.is_set():
            sock.close()
            return
        with self.lock:
            old, self.mate = self.mate, None
        if old is not None:
            old.close()
        mate = _Mate(sock, self._on_line, self._mate_lost)
        with self.lock:          # the hello goes before any report of this unit's link
            self.mate = mate
            mate.send({"op": "hello", "name": self.name, "role": self.role,
                       "preferred": self.preferred, "gen": self._gen,
                       "admit": self.admits[self.name],
                       "link": self.local.snapshot() if self.local else None})
        mate.start()
        self._iw_flush()

    def _alone_timer(self) -> None:
        if self._stopped.wait(self.alone_after_s):
            return
        with self.lock:
            alone = self.role == STARTING
        if alone:
            self._become_active("no other unit heard")

    def _replicate(self, kind: str, d: dict) -> None:     # ISUP's / TCAP's on_update
        with self.lock:
            mate = self.mate if self.role == ACTIVE else None
        if mate is not None:
            mate.send({"op": kind, "d": d})

    def _on_line(self, msg: dict) -> None:
        op = msg.get("op")
        if op == "hello":
            self._on_hello(msg)
        elif op == "report":
            with self.lock:
                if self.remote is None or self.remote.gen != msg["gen"]:
                    self._new_remote(msg["gen"], None)
                self.remote.on_report(msg)
                if msg["ev"] == "rx" and self.role == ACTIVE and self.mate is not None:
                    self.mate.send({"op": "rx_done", "gen": msg["gen"], "fsn": msg["fsn"]})
        elif op == "rx_done":
            with self.lock:
                while self._unconfirmed and (self._unconfirmed[0][0], self._unconfirmed[0][1]) \
                        <= (msg["gen"], msg["fsn"]):
                    self._unconfirmed.popleft()
        elif op == "send":
            with self.lock:
                if self.local is not None and self.local.state == m2pa.IN_SERVICE:
                    self.local.send(bytes.fromhex(msg["msu"]))
                else:
                    self.log("an MSU from the other unit not sent: this unit's link is down")
        elif op == "isup":             # the active's changes, applied outside our lock
            self.isup.apply(msg["d"])
        elif op == "tcap":
            self.tcap.apply(msg["d"])
        elif op == "admit":            # the other unit's SS7 stack flag
            with self.lock:
                if msg.get("unit") != self.mate_name:
                    self.log(f"an SS7 stack flag for {msg.get('unit')!r}, not {self.mate_name}: ignored")
                    return
                self.admits[self.mate_name] = bool(msg.get("enabled", True))
            self._apply_admits()
        elif op == "iw_cmd":           # the other unit's interworking: run here, the active
            self.iw_command({k: v for k, v in msg.items() if k != "op"}, from_mate=True)
        elif op == "iw_ev":            # an ISUP event of a call on this unit's trunk group
            if self.iw is not None:
                self.iw.on_isup(msg["ev"], msg["d"])
        elif op == "snapshots":
            self.isup.restore(msg["isup"], take_over=False)
            self.tcap.restore(msg["tcap"])
        else:
            self.log(f"unknown message from the other unit: {op!r}")

    def _new_remote(self, gen: int, snap: Optional[dict]) -> None:   # under the lock
        self.remote = RemoteLink(f"{self.mate_name}/{self.mate_slc}", gen, self.lock, snap,
                                 send=self._send_on_mate_link if self.role == ACTIVE else None)
        if self.ls is not None:
            self.ls.adopt(self.mate_slc, self.remote)

    def _send_on_mate_link(self, msu: bytes) -> None:
        """The active's MSU for the other unit's link (kept by the RemoteLink until sent)."""
        if self.mate is not None:
            self.mate.send({"op": "send", "msu": msu.hex()})

    def _wins(self, other: dict) -> bool:
        if (self.role == ACTIVE) != (other["role"] == ACTIVE):
            return self.role == ACTIVE
        if self.preferred != other["preferred"]:
            return self.preferred
        return self.name < other["name"]

    def _on_hello(self, hello: dict) -> None:
        with self.lock:
            self.admits[self.mate_name] = bool(hello.get("admit", True))
        self._apply_admits()
        active = self._wins(hello)
        if active and self.role != ACTIVE:
            self._become_active(f"chosen over {hello['name']}")
        with self.lock:
            if not active:
                if self.role == ACTIVE:
                    self._yield_linkset()
                self.role = STANDBY
                self._unconfirmed.clear()     # from before: never reported, not the active's
                self.log(f"standby of {hello['name']}")
            self._new_remote(hello["gen"], hello["link"])
        if active:
            self.isup.set_group_down(self.mate_name, False)
            with self.lock:
                mate = self.mate
            if mate is not None:     # taken and queued under their locks: no change of
                with self.isup.lock, self.tcap.lock:      # theirs can pass it on the way
                    mate.send({"op": "snapshots", "isup": self.isup.snapshot(),
                               "tcap": self.tcap.snapshot()})

    def _yield_linkset(self) -> None:      # under the lock: both were active
        ls, self.ls = self.ls, None
        ls.links[self.slc] = None        # this unit's link lives on without it
        if self.local is not None:
            self.local.on_msu = self.local.on_state = None
        ls.stop()
        self.isup.attach(None)
        self.tcap.attach(None)

    def _become_active(self, why: str) -> None:
        with self.lock:
            if self.role == ACTIVE or self._stopped.is_set():
                return
            took_over = self.role == STANDBY
            self.role = ACTIVE
            t0 = time.monotonic()
            self.ls = Linkset(self.name, self.opc, self.dpc, [Port(self.slc), Port(self.mate_slc)],
                              lock=self.lock, proving_s=self.proving_s, on_message=self._deliver,
                              log=self.log).start()
            links = {self.slc: self.local} if self.local is not None else {}
            if self.remote is not None:
                self.remote._send = None      # the other unit is gone, or has not said so yet
                if took_over:                 # what it last reported: changed over at once
                    self.remote.fail(f"unit {self.mate_name} lost")
                links[self.mate_slc] = self.remote
            self.ls.adopt_links(links)
            # what this unit's link accepted while standby and the active never confirmed
            # (it was lost before it had them): delivered now, in order
            late = [bytes.fromhex(m) for g, _, m in self._unconfirmed
                    if self.local is not None and g == self._gen]
            self._unconfirmed.clear()
            for msu in late:     # the lost active may have had some: replayed
                try:
                    m = decode_msu(msu)
                except Mtp3Error:
                    continue
                if m.dpc == self.opc:
                    self._deliver(m, self.slc, replayed=True)
            if late:
                self.log(f"{len(late)} MSUs accepted while standby replayed at the takeover")
            self.log(f"active: {why}")
        self.isup.attach(self.ls.send)
        self.tcap.attach(self.ls.send)
        if took_over:
            self.isup.take_over()        # first: its RELs are the old active's, sent again
            self.isup.set_group_down(self.mate_name)
            with self.lock:
                self.takeovers.append({"t": time.time(), "why": why,
                                       "seconds": round(time.monotonic() - t0, 4)})
        self._iw_flush()

    def _mate_lost(self, mate: _Mate) -> None:
        with self.lock:
            if self.mate is not mate:
                return
            self.mate = None
            role = self.role
            if role == ACTIVE and self.remote is not None:
                self.remote._send = None
                self.remote.fail(f"unit {self.mate_name} lost")
        self.log(f"unit {self.mate_name} lost ({role})")
        if role == ACTIVE:
            self.isup.set_group_down(self.mate_name)
        elif role == STANDBY and not self._stopped.is_set():
            self._become_active(f"unit {self.mate_name} lost")

    # -- SIP-ISUP interworking: each unit's side of its own trunk group's calls ----------------

    def iw_command(self, cmd: dict, from_mate: bool = False) -> None:
        """An interworking order (place, answer, release): carried out by ISUP here when
        this node is active, else sent to the active (an order from the other unit is
        never sent back: both nodes are starting). Not under the node's lock."""
        with self.lock:
            role, mate = self.role, self.mate
            if role != ACTIVE and (mate is None or from_mate):
                # starting, or the other unit just lost: held until this node joins its
                # mate or becomes active, IW_HOLD_S at most (then a new call fails)
                self._iw_held.append(cmd)
                if cmd["cmd"] == "place":
                    t = threading.Timer(IW_HOLD_S, self._iw_expire, (cmd,))
                    t.daemon = True
                    t.start()
                return
        if role != ACTIVE:
            mate.send({"op": "iw_cmd", **cmd})
            return
        try:
            if cmd["cmd"] == "place":
                if self.isup.place_call(cmd["called"], group=cmd["group"], ref=cmd["ref"]) is None:
                    why = "refusing" if cmd["group"] in self.isup.refusing else "no circuit"
                    self._iw_event("failed", cmd["group"], {"ref": cmd["ref"], "direction": "out",
                                                            "why": why})
            elif cmd["cmd"] == "answer":
                self.isup.answer(cmd["cic"])
            elif cmd["cmd"] == "release":
                self.isup.release(cmd["cic"], cmd.get("cause", 16))
        except (KeyError, ValueError) as exc:
            self.log(f"interworking order {cmd!r} not carried out: {exc!r}")

    def _iw_expire(self, cmd: dict) -> None:
        with self.lock:
            if cmd not in self._iw_held:
                return
            self._iw_held.remove(cmd)
        self._iw_event("failed", cmd["group"], {"ref": cmd["ref"], "direction": "out",
                                                "why": "no active SS7 node"})

    def _iw_flush(self) -> None:
        """The orders held while this node had neither a mate nor the active role."""
        with self.lock:
            held, self._iw_held = self._iw_held, []
        for cmd in held:
            self.iw_command(cmd)

    def _isup_event(self, ev: str, call) -> None:     # ISUP's on_event, under its lock
        if not self.interworking:
            return
        c = self.isup.circuits.get(call.cic)
        if c is not None:
            self._iw_event(ev, c.group, asdict(call))

    def _iw_event(self, ev: str, group: str, d: dict) -> None:
        """To the interworking of the unit whose trunk group it is: here, or the other unit."""
        if group == self.name:
            if self.iw is not None:
                self.iw.on_isup(ev, d)
        elif group == self.mate_name:
            mate = self.mate
            if mate is not None:
                mate.send({"op": "iw_ev", "ev": ev, "d": d})

    def _deliver(self, m, slc: int, replayed: bool = False) -> None:
        self.isup.on_message(m, slc, replayed)
        self.tcap.on_message(m, slc, replayed)


# -- python -m emulator.ss7.spread: one unit's node ----------------------------------------

EXAMPLE = """example: tmedia-1 (preferred) and tmedia-2, the far end connecting to both links:
  python -m emulator.ss7.spread --name tmedia-1 --mate tmedia-2 --opc 1001 --dpc 2002 \\
      --slc 0 --link-listen 10.0.3.21:3565 --mate-listen 10.0.1.21:3566 \\
      --groups tmedia-1=1-30,tmedia-2=31-60 --preferred --status /run/ss7.json
  python -m emulator.ss7.spread --name tmedia-2 --mate tmedia-1 --opc 1001 --dpc 2002 \\
      --slc 1 --link-listen 10.0.3.22:3565 --mate-connect 10.0.1.21:3566 \\
      --groups tmedia-1=1-30,tmedia-2=31-60 --status /run/ss7.json"""


def address(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{s!r}: expected HOST:PORT")
    return host, int(port)


def groups(s: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for part in _split_groups(s):
        name, sep, ranges = part.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"{part!r}: expected UNIT=CIC-RANGES")
        out[name] = cic_ranges(ranges)
    seen = [c for cics in out.values() for c in cics]
    if len(seen) != len(set(seen)):
        raise argparse.ArgumentTypeError(f"{s!r}: a CIC in two trunk groups")
    return out


def _split_groups(s: str) -> list[str]:
    """"a=1-3,5,b=6-9" -> ["a=1-3,5", "b=6-9"]: a comma before NAME= starts a group."""
    parts: list[str] = []
    for item in s.split(","):
        if "=" in item or not parts:
            parts.append(item)
        else:
            parts[-1] += "," + item
    return parts


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emulator.ss7.spread",
        description="This unit's part of the system's SS7 signalling point: its own M2PA "
                    "link to the far end, and MTP3, ISUP and TCAP active or standby with the "
                    "other unit (see the module's docstring). Without a SIP side yet, the "
                    "With --sip, each unit's SIP-ISUP interworking (interwork.py) is the SIP side "
                    "of its own trunk group's calls; without it, the active answers the far "
                    "end's IAMs itself after --answer-delay.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="this unit, e.g. tmedia-1")
    p.add_argument("--mate", required=True, help="the other unit")
    p.add_argument("--opc", type=point_code, required=True, help="the system's point code")
    p.add_argument("--dpc", type=point_code, required=True, help="the far end's point code")
    p.add_argument("--slc", type=int, choices=(0, 1), required=True,
                   help="this unit's link code; the other unit's is the other one")
    p.add_argument("--link-listen", type=address, required=True, metavar="HOST:PORT",
                   help="where the far end connects this unit's link")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--mate-listen", type=address, metavar="HOST:PORT")
    g.add_argument("--mate-connect", type=address, metavar="HOST:PORT")
    p.add_argument("--groups", type=groups, required=True, metavar="UNIT=CICS,...",
                   help="ISUP trunk groups by unit, e.g. tmedia-1=1-30,tmedia-2=31-60")
    p.add_argument("--preferred", action="store_true", help="active when both start")
    p.add_argument("--proving", type=positive(float), default=m2pa.PROVING_S, metavar="S")
    p.add_argument("--answer-delay", type=positive(float), default=0.1, metavar="S",
                   help="ANM S s after the ACM of the far end's call (default 0.1)")
    p.add_argument("--sip", type=address, metavar="HOST:PORT",
                   help="the interworking's SIP address (the unit's ISUP trunk group as a "
                        "gateway route's destination)")
    p.add_argument("--sip-stack", type=address, metavar="HOST:PORT",
                   help="the unit's SIP stack, where the far end's calls go as INVITEs "
                        "(with --sip; default: --sip's host, port 5060)")
    p.add_argument("--status", metavar="FILE",
                   help="the node's status as JSON, rewritten every 0.5 s")
    p.add_argument("--control", metavar="FILE",
                   help='the operator\'s flag, read every 0.5 s: {"ss7_enabled": false} refuses '
                        "new calls on this unit's trunk group (cause 63); no file: enabled")
    return p


def read_control(path: Optional[str]) -> bool:
    """This unit's SS7 stack flag from the board's control file (absent or unreadable:
    enabled, as before any configuration)."""
    if not path:
        return True
    try:
        with open(path) as f:
            return json.load(f).get("ss7_enabled", True) is not False
    except (OSError, ValueError, AttributeError):
        return True


def main(argv: Optional[list[str]] = None) -> int:
    a = parser().parse_args(argv)
    if {a.name, a.mate} - set(a.groups):
        parser().error(f"--groups: a trunk group for each of {a.name} and {a.mate}")
    if a.sip_stack and not a.sip:
        parser().error("--sip-stack needs --sip")
    try:
        node = Node(a.name, a.mate, a.opc, a.dpc, slc=a.slc, mate_slc=1 - a.slc,
                    link_listen=a.link_listen, groups=a.groups, preferred=a.preferred,
                    mate_listen=a.mate_listen, mate_connect=a.mate_connect,
                    proving_s=a.proving, interworking=a.sip is not None,
                    isup_kw={"answer_after_s": None if a.sip else a.answer_delay},
                    tcap_kw={"first_tid": 0x1000 if a.slc == 0 else 0x100000})
    except OSError as e:
        print(f"ss7-{a.name}: cannot listen: {e}", file=sys.stderr)
        return 2
    iw = None
    if a.sip:
        from .interwork import Interworking      # sippy: only where there is a SIP side
        try:
            iw = Interworking(a.name, *a.sip, a.sip_stack or (a.sip[0], 5060),
                              node.iw_command, node.log).start()
        except OSError as e:
            print(f"ss7-{a.name}: cannot listen for SIP: {e}", file=sys.stderr)
            return 2
        node.iw = iw
    stop = threading.Event()

    def on_signal(*_):
        stop.set()
        if iw is not None:
            iw.stop_from_thread()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    node.start()

    def keep_status():
        while not stop.wait(0.5):
            node.set_admit(read_control(a.control))
            if a.status:
                tmp = f"{a.status}.tmp"
                with open(tmp, "w") as f:
                    json.dump(node.status(), f, default=str)
                os.replace(tmp, a.status)
    if iw is None:
        keep_status()
    else:      # sippy's reactor on this thread, the status beside it
        threading.Thread(target=keep_status, daemon=True, name="ss7-status").start()
        iw.run()
        stop.set()
    node.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
