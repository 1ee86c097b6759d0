"""M2PA (RFC 4165) signalling links over TCP: one TCP connection is one link.

Our kernels have no SCTP, so the frames ride a TCP stream instead of SCTP messages.
M2PA's own framing (the common header's length) and sequence numbers make that work:

- a frame is the common header (version 1, class 11 "M2PA", type User Data or Link
  Status, length of the whole frame), the M2PA header (BSN, FSN: 24 bits each) and the
  message: an MSU (priority octet, SIO, SIF) or a link state (32 bits);
- `FrameReader` cuts frames out of the stream whatever the reads' sizes; a frame it
  cannot take (wrong version/class/type, a length out of range, an unknown link state)
  raises `M2PAError`. Over TCP a bad frame loses the framing of everything after it, so
  the link fails (over SCTP only that message would be dropped);
- `Link` is one connection's signalling link: alignment (Alignment, Proving Normal for
  `proving_s`, Ready both ways), MSUs numbered by FSN and acknowledged by BSN (an empty
  User Data acknowledges when there is nothing to send), failure on a lost connection,
  a peer's Out of Service or Processor Outage, a protocol error, or no alignment within
  `align_timeout_s`. A failed link keeps its retransmission buffer: `retrieve` gives MTP3
  the MSUs the peer did not accept, for changeover.

The codec is pycrate's (pycrate_mobile.SIGTRAN): its `Header` and `M2PA` for User Data.
pycrate 0.7.8 reads a Link Status's State as one octet where RFC 4165 2.3.2 has 32 bits
(a peer's Ready, 00 00 00 04, would decode as state 0 with three octets of filler), so
Link Status is an Envelope of pycrate's elements defined here with the State on 32 bits.
"""
from __future__ import annotations

import queue
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from pycrate_core.base import REPR_HEX, Buf, Uint32
from pycrate_core.elt import Envelope
from pycrate_mobile import SIGTRAN

VERSION, MSG_CLASS = 1, 11     # common header: version 1, class 11 (SIGTRAN.M2PA is the class)
USER_DATA, LINK_STATUS = SIGTRAN.M2PA_DATA, SIGTRAN.M2PA_STAT
# Link Status states (RFC 4165 2.3.2)
ALIGNMENT, PROVING_NORMAL, PROVING_EMERGENCY, READY = 1, 2, 3, 4
PROCESSOR_OUTAGE, PROCESSOR_RECOVERED, BUSY, BUSY_ENDED, OUT_OF_SERVICE = 5, 6, 7, 8, 9
STATE_NAMES = {ALIGNMENT: "Alignment", PROVING_NORMAL: "Proving Normal",
               PROVING_EMERGENCY: "Proving Emergency", READY: "Ready",
               PROCESSOR_OUTAGE: "Processor Outage", PROCESSOR_RECOVERED: "Processor Recovered",
               BUSY: "Busy", BUSY_ENDED: "Busy Ended", OUT_OF_SERVICE: "Out of Service"}

HEADER_LEN = 16                # common header (8) + M2PA header (8)
MAX_MSU = 4096                 # SIO + SIF: 273 octets on a classic link, up to 4 kB (Q.2210)
MAX_LEN = HEADER_LEN + 1 + MAX_MSU
SEQ_MOD = 1 << 24              # FSN/BSN are 24 bits; both start at 2**24 - 1 (RFC 4165)

PROVING_S = 0.5                # the testbed's proving period (Q.703's T4 is 8.2 s normal)
ALIGN_TIMEOUT_S = 5.0
# Sent-but-unacknowledged MSUs at most: MTP3 names the last accepted one in a
# changeover order (COO) by its FSN's 7 low bits, which must then say which one it is.
WINDOW = 127

# Link.state values
OUT, ALIGNING, PROVING, IN_SERVICE, FAILED = (
    "out_of_service", "aligning", "proving", "in_service", "failed")


class M2PAError(Exception):
    """A frame that is not M2PA as RFC 4165 has it, or a peer breaking the procedure."""


class LinkUnavailable(Exception):
    """An MSU handed to a link that is not in service."""


class _LinkStatusMessage(Envelope):
    """RFC 4165 2.3.2 Link Status: pycrate's common header and M2PA header, a 32-bit
    State, optional filler."""
    _GEN = (
        SIGTRAN.Header(val={"Class": MSG_CLASS, "Type": LINK_STATUS}),
        SIGTRAN.M2PA._GEN[1],                          # unused, BSN, unused, FSN
        Uint32("State", dic=STATE_NAMES),
        Buf("Filler", val=b"", rep=REPR_HEX),
    )

    def __init__(self, *args, **kwargs):
        Envelope.__init__(self, *args, **kwargs)
        self[0][4].set_valauto(lambda: 20 + self[3].get_len())
        self[3].set_blauto(lambda: 8 * max(0, self[0][4].get_val() - 20))


@dataclass(frozen=True)
class Frame:
    kind: int                       # USER_DATA or LINK_STATUS
    bsn: int
    fsn: int
    state: Optional[int] = None     # Link Status
    msu: Optional[bytes] = None     # User Data: SIO + SIF; None: empty (an acknowledgement)
    priority: int = 0


def user_data(bsn: int, fsn: int, msu: Optional[bytes], priority: int = 0) -> Frame:
    return Frame(USER_DATA, bsn, fsn, msu=msu, priority=priority)


def link_status(bsn: int, fsn: int, state: int) -> Frame:
    return Frame(LINK_STATUS, bsn, fsn, state=state)


def encode(f: Frame) -> bytes:
    seq = {"BSN": f.bsn % SEQ_MOD, "FSN": f.fsn % SEQ_MOD}
    if f.kind == LINK_STATUS:
        return _LinkStatusMessage(val={"M2PAHeader": seq, "State": f.state}).to_bytes()
    m = SIGTRAN.M2PA(val={"M2PAHeader": seq})
    if f.msu is None:
        m[2].set_trans(True)                           # length 16: no data field
    else:
        m[2].set_val({"Priority": f.priority, "Data": f.msu})
    return m.to_bytes()


def check_header(head: bytes) -> int:
    """The frame length a common header announces, once its fields are M2PA's."""
    h = SIGTRAN.Header()
    h.from_bytes(head[:8])
    version, _spare, cls, typ, length = h.get_val()
    if version != VERSION:
        raise M2PAError(f"version {version}, expected {VERSION}")
    if cls != MSG_CLASS:
        raise M2PAError(f"message class {cls}, expected {MSG_CLASS} (M2PA)")
    if typ not in (USER_DATA, LINK_STATUS):
        raise M2PAError(f"message type {typ}: neither User Data (1) nor Link Status (2)")
    low = HEADER_LEN + (4 if typ == LINK_STATUS else 0)
    if not low <= length <= MAX_LEN:
        raise M2PAError(f"length {length} out of range {low}..{MAX_LEN} for type {typ}")
    if typ == USER_DATA and length == HEADER_LEN + 1:
        raise M2PAError("User Data with a priority octet and no MSU")
    return length


def decode(frame: bytes) -> Frame:
    """One whole frame (as FrameReader cuts them); raises M2PAError."""
    if len(frame) < 8 or check_header(frame) != len(frame):
        raise M2PAError(f"{len(frame)} bytes are not one whole frame")
    try:
        if frame[3] == LINK_STATUS:
            m = _LinkStatusMessage()
            m.from_bytes(frame)
            f = Frame(LINK_STATUS, m[1]["BSN"].get_val(), m[1]["FSN"].get_val(),
                      state=m["State"].get_val())
        else:
            m = SIGTRAN.M2PA()
            m.from_bytes(frame)
            msu = None if len(frame) == HEADER_LEN else m[2]["Data"].get_val()
            pri = 0 if msu is None else m[2]["Priority"].get_val()
            f = Frame(USER_DATA, m[1]["BSN"].get_val(), m[1]["FSN"].get_val(), msu=msu,
                      priority=pri)
    except Exception as e:          # pycrate raises its own errors on short fields
        raise M2PAError(f"undecodable frame: {e}") from None
    if f.kind == LINK_STATUS and f.state not in STATE_NAMES:
        raise M2PAError(f"unknown link state {f.state}")
    return f


class FrameReader:
    """Frames out of a byte stream: feed it what recv() returned, in any sizes."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[Frame]:
        """The whole frames received so far; raises M2PAError at the first bad one
        (the frames before it have been yielded)."""
        self._buf += data
        while len(self._buf) >= 8:
            length = check_header(bytes(self._buf[:8]))   # before waiting for `length` bytes
            if len(self._buf) < length:
                return
            frame = bytes(self._buf[:length])
            del self._buf[:length]
            yield decode(frame)


def configure_socket(sock: socket.socket) -> None:
    """No Nagle delay for MSUs; a peer gone silent (no FIN, no RST) fails the link in
    about 3 s: SCTP would notice it by its heartbeats, TCP only by these timers."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, val in (("TCP_KEEPIDLE", 1), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 2),
                     ("TCP_USER_TIMEOUT", 3000)):
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), val)


def retrieve(unacked: deque, waiting: deque, acked: int, fsn: int, peer_fsn: Optional[int],
             bits: int) -> Optional[list[bytes]]:
    """Link.retrieve's rule on a link's buffers: unacked holds (fsn, msu) sent and not
    acknowledged (acked: the highest acknowledged, fsn: the last sent, both unbounded),
    waiting the MSUs not sent; both are emptied unless None is returned."""
    if peer_fsn is None:
        sent = []
    else:
        delta = (peer_fsn - acked) % (1 << bits)
        if delta > fsn - acked:
            return None
        sent = [m for f, m in unacked if f > acked + delta]
    out = sent + list(waiting)
    unacked.clear()
    waiting.clear()
    return out


class Link:
    """One M2PA link on one connected TCP socket; a new connection is a new Link.

    Everything that changes the link's state runs under `lock` (MTP3 passes its own, so
    a linkset's links and procedures share one lock), and so do the callbacks:
    on_msu(link, msu) for each MSU accepted, in FSN order, and on_state(link, state).
    Socket writes happen on the link's writer thread, outside the lock."""

    def __init__(self, sock: socket.socket, name: str = "link", *, proving_s: float = PROVING_S,
                 align_timeout_s: float = ALIGN_TIMEOUT_S, window: int = WINDOW,
                 lock=None, on_msu: Optional[Callable] = None,
                 on_state: Optional[Callable] = None, clock: Callable[[], float] = time.monotonic):
        self.sock, self.name, self.clock = sock, name, clock
        self.proving_s, self.align_timeout_s, self.window = proving_s, align_timeout_s, window
        self.lock = lock if lock is not None else threading.RLock()
        self.on_msu, self.on_state = on_msu, on_state
        self.state, self.failure = OUT, None
        self.states = [(clock(), OUT)]              # every transition, for status and tests
        self.failed_at: Optional[float] = None
        # Sequence numbers run unbounded here (-1 = none yet) and go out modulo 2**24.
        self._fsn = -1              # FSN of the last User Data sent
        self._acked = -1            # our highest FSN the peer acknowledged
        self._rx = -1               # FSN of the last MSU accepted from the peer
        self._bsn_told = -1         # the BSN we last sent
        self._unacked: deque = deque()      # (fsn, msu) sent, not acknowledged
        self._waiting: deque = deque()      # msu, not sent: the window is full
        self._proved = self._peer_ready = False
        self._out: queue.SimpleQueue = queue.SimpleQueue()
        self._timers: list[threading.Timer] = []
        self._closed = self._started = False
        self.counters = {"msus_tx": 0, "msus_rx": 0, "acks_tx": 0}
        configure_socket(sock)

    # -- procedure --------------------------------------------------------------------

    def start(self) -> None:
        with self.lock:
            self._started = True
            self._set_state(ALIGNING)
            self._status(ALIGNMENT)
            self._timer(self.align_timeout_s, self._align_timeout)
        self._writer = threading.Thread(target=self._write_loop, name=f"m2pa-{self.name}-tx",
                                        daemon=True)
        self._reader = threading.Thread(target=self._read_loop, name=f"m2pa-{self.name}-rx",
                                        daemon=True)
        self._writer.start()
        self._reader.start()

    def send(self, msu: bytes) -> None:
        """Number and send one MSU (SIO + SIF); held while the window is full."""
        if not 0 < len(msu) <= MAX_MSU:
            raise ValueError(f"MSU of {len(msu)} bytes (1..{MAX_MSU})")
        with self.lock:
            if self.state != IN_SERVICE:
                raise LinkUnavailable(f"link {self.name} is {self.state}")
            if len(self._unacked) >= self.window:
                self._waiting.append(msu)
            else:
                self._transmit(msu)

    def stop(self) -> None:
        """Out of Service to the peer, then close (our side ends the link, not a failure)."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            self._cancel_timers()
            if not self._started:
                self.sock.close()
                return
            if self.state != FAILED:
                self._status(OUT_OF_SERVICE)
                self._set_state(OUT)
            self._out.put(None)

    def fail(self, reason: str) -> None:
        with self.lock:
            self._fail(reason)

    def last_accepted(self) -> int:
        """FSN (24 bits) of the last MSU accepted from the peer: what a COO reports."""
        with self.lock:
            return self._rx % SEQ_MOD

    def retrieve(self, peer_fsn: Optional[int], bits: int = 24) -> Optional[list[bytes]]:
        """After a failure, the MSUs to send again on another link, in order: those after
        `peer_fsn` (the FSN of the last MSU the peer accepted, its low `bits` bits) and
        those never sent; the buffers are emptied. `peer_fsn` None: only the never-sent
        ones (Q.704's time-controlled diversion: the unacknowledged ones are discarded).
        None, buffers kept, when `peer_fsn` names none of the MSUs the peer could have
        accepted last."""
        with self.lock:
            return retrieve(self._unacked, self._waiting, self._acked, self._fsn, peer_fsn, bits)

    def unacknowledged(self) -> int:
        with self.lock:
            return len(self._unacked) + len(self._waiting)

    def status(self) -> dict:
        with self.lock:
            since = self.states[-1][0]
            return {"state": self.state, "failure": self.failure,
                    "for_s": round(self.clock() - since, 3),
                    "fsn_tx": self._fsn % SEQ_MOD, "acked": self._acked % SEQ_MOD,
                    "accepted": self._rx % SEQ_MOD, "unacknowledged": len(self._unacked),
                    "waiting": len(self._waiting), **self.counters}

    # -- under the lock ---------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        self.state = state
        self.states.append((self.clock(), state))
        if self.on_state:
            self.on_state(self, state)

    def _emit(self, f: Frame) -> None:
        self._out.put(encode(f))

    def _status(self, state: int) -> None:
        self._emit(link_status(self._rx, self._fsn, state))
        self._bsn_told = self._rx

    def _transmit(self, msu: bytes) -> None:
        self._fsn += 1
        self._unacked.append((self._fsn, msu))
        self._emit(user_data(self._rx, self._fsn, msu))
        self._bsn_told = self._rx
        self.counters["msus_tx"] += 1

    def _timer(self, delay: float, fn: Callable[[], None]) -> None:
        t = threading.Timer(delay, self._fire, (fn,))
        t.daemon = True
        self._timers.append(t)
        t.start()

    def _fire(self, fn) -> None:
        with self.lock:
            if self.state not in (FAILED, OUT):
                fn()

    def _cancel_timers(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()

    def _align_timeout(self) -> None:
        if self.state in (ALIGNING, PROVING):
            self._fail(f"not aligned within {self.align_timeout_s} s")

    def _proving_over(self) -> None:
        if self.state == PROVING:
            self._proved = True
            self._status(READY)
            if self._peer_ready:
                self._in_service()

    def _in_service(self) -> None:
        self._cancel_timers()
        self._set_state(IN_SERVICE)

    def _fail(self, reason: str) -> None:
        if self.state == FAILED or self._closed:
            return
        self.failure, self.failed_at = reason, self.clock()
        self._cancel_timers()
        self._closed = True
        self._out.put(None)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)   # the peer sees it at once
        except OSError:
            pass
        self._set_state(FAILED)

    def _ack(self, bsn: int) -> None:
        delta = (bsn - self._acked) % SEQ_MOD
        if delta == 0:
            return
        if delta > self._fsn - self._acked:
            raise M2PAError(f"BSN {bsn} acknowledges an FSN never sent "
                            f"(last {self._fsn % SEQ_MOD})")
        self._acked += delta
        while self._unacked and self._unacked[0][0] <= self._acked:
            self._unacked.popleft()
        while self._waiting and len(self._unacked) < self.window and self.state == IN_SERVICE:
            self._transmit(self._waiting.popleft())

    def _handle(self, f: Frame) -> None:
        if self.state in (FAILED, OUT):
            return
        self._ack(f.bsn)
        if f.kind == LINK_STATUS:
            s = f.state
            if s in (ALIGNMENT, PROVING_NORMAL, PROVING_EMERGENCY):
                if self.state == ALIGNING:
                    self._set_state(PROVING)
                    self._status(PROVING_NORMAL)
                    self._timer(self.proving_s, self._proving_over)
                elif self.state == IN_SERVICE:
                    self._fail("peer restarted alignment")
            elif s == READY:
                self._peer_ready = True
                if self.state == PROVING and self._proved:
                    self._in_service()
            elif s == OUT_OF_SERVICE:
                if self.state != ALIGNING:          # a peer not started yet may say it
                    self._fail("peer sent Out of Service")
            elif s == PROCESSOR_OUTAGE:
                self._fail("remote processor outage")
            # Processor Recovered, Busy, Busy Ended: no congestion procedure here
            return
        if f.msu is None:
            return                                   # an acknowledgement only
        if self.state == PROVING and self._proved:
            self._in_service()                       # User Data stands for the peer's Ready
        if self.state != IN_SERVICE:
            raise M2PAError(f"User Data while {self.state}")
        expected = (self._rx + 1) % SEQ_MOD
        if f.fsn != expected:
            raise M2PAError(f"FSN {f.fsn}, expected {expected}")
        self._rx += 1
        self.counters["msus_rx"] += 1
        if self.on_msu:
            self.on_msu(self, f.msu)

    # -- threads ----------------------------------------------------------------------

    def _read_loop(self) -> None:
        reader = FrameReader()
        try:
            while True:
                try:
                    data = self.sock.recv(65536)
                except OSError as e:
                    self.fail(f"receive: {e}")
                    return
                if not data:
                    self.fail("connection closed by the peer")
                    return
                with self.lock:
                    try:
                        for f in reader.feed(data):
                            self._handle(f)
                    except M2PAError as e:
                        self._fail(f"protocol error: {e}")
                        return
                    if self.state == IN_SERVICE and self._rx != self._bsn_told:
                        self._emit(user_data(self._rx, self._fsn, None))
                        self._bsn_told = self._rx
                        self.counters["acks_tx"] += 1
        finally:
            self._writer.join(2.0)
            self.sock.close()

    def _write_loop(self) -> None:
        while True:
            data = self._out.get()
            if data is None:
                break
            try:
                self.sock.sendall(data)
            except OSError as e:
                self.fail(f"send: {e}")
                break
        try:
            self.sock.shutdown(socket.SHUT_RDWR)   # after the last frame (stop's Out of Service)
        except OSError:
            pass
