"""Overload control of one SIP application: which new INVITEs it sheds, and how busy its
reactor is.

It exists so that a unit driven past its clean rate refuses the excess with
`503 Service Unavailable` and `Retry-After` (RFC 3261 21.5.4) instead of taking every
call and answering none in time, and so that its established calls, whose in-dialog
requests are never shed, go on. Two rules, checked for every new INVITE on the reactor,
both O(1):

- a token bucket of `max_cps` new calls a second (burst: `burst_s` seconds' worth);
- at most `max_pending` calls waiting for the gateway's route at once (a slow gateway
  must not pile work up on the unit).

`ReactorBeat` is the reactor's liveness as the on-board monitor sees it: the reactor
stamps it from a 100 ms timer and for every datagram it handles (under a continuous
stream of datagrams sippy's reactor runs its timers late: a busy reactor must not look
stuck), and the board link (its own thread, off the call path) reports the stamp's age
with every heartbeat. A deadlocked reactor's age grows until the monitor reboots the
unit.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

RETRY_AFTER_S = 1


class Admission:
    def __init__(self, max_cps: float, max_pending: int, pending_fn: Callable[[], int],
                 burst_s: float = 0.2, clock: Callable[[], float] = time.monotonic):
        if max_cps <= 0 or max_pending <= 0:
            raise ValueError("max_cps and max_pending must be > 0")
        self.max_cps, self.max_pending, self.pending_fn = float(max_cps), int(max_pending), pending_fn
        self.capacity = max(1.0, self.max_cps * burst_s)
        self.clock = clock
        self.tokens, self.stamp = self.capacity, clock()
        self.shed = 0              # new calls refused for overload

    def refuse(self) -> Optional[str]:
        """None to take the call; else why it is shed (the 503's reason)."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.max_cps)
        self.stamp = now
        if self.pending_fn() >= self.max_pending:
            why = f"overload: {self.max_pending} calls waiting for a route"
        elif self.tokens < 1.0:
            why = f"overload: over {self.max_cps:g} new calls/s"
        else:
            self.tokens -= 1.0
            return None
        self.shed += 1
        return why


class SourceShare:
    """New INVITEs per source address, max-min fair: every source that offered a new call
    in the last WINDOW_S gets an equal share of `max_cps` (a token bucket each). One
    caller alone may use the whole rate; a flood from one source beside other callers
    gets its share and no more, and is refused at the door, before sippy parses it, so
    the reactor stays free for the others' calls. Many spoofed sources dilute every
    share: the global Admission bucket still bounds the total. O(1) a datagram, with a
    sweep of idle sources every WINDOW_S / 4; at most MAX_SOURCES remembered."""
    WINDOW_S = 1.0
    MAX_SOURCES = 4096

    def __init__(self, max_cps: float, burst_s: float = 0.2,
                 clock: Callable[[], float] = time.monotonic):
        self.max_cps, self.burst_s, self.clock = float(max_cps), burst_s, clock
        self.sources: dict = {}      # ip -> [tokens, stamp, last offered]
        self.swept = clock()
        self.shed = 0

    def take(self, source: str) -> bool:
        """True: the source is within its share (one token taken); False: shed it."""
        now = self.clock()
        if now - self.swept > self.WINDOW_S / 4 or len(self.sources) > self.MAX_SOURCES:
            self.sources = {ip: st for ip, st in self.sources.items() if now - st[2] <= self.WINDOW_S}
            if len(self.sources) > self.MAX_SOURCES:
                self.sources.clear()
            self.swept = now
        st = self.sources.get(source)
        n = len(self.sources) + (st is None)
        rate = self.max_cps / n
        cap = max(1.0, rate * self.burst_s)
        if st is None:
            st = self.sources[source] = [cap, now, now]
        tokens = min(cap, st[0] + (now - st[1]) * rate)
        st[1] = st[2] = now
        if tokens < 1.0:
            st[0] = tokens
            self.shed += 1
            return False
        st[0] = tokens - 1.0
        return True

    def status(self) -> dict:
        return {"sources": len(self.sources), "shed": self.shed}


class ReactorBeat:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.last = clock()

    def beat(self) -> None:          # on the reactor
        self.last = self.clock()

    def age(self) -> float:          # from any thread
        return max(0.0, self.clock() - self.last)


SHED_TAG = "tbshed"       # the To tag of a 503 sent without sippy (its ACK is dropped too)
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id"}


def fast_busy(data: bytes, why: str, tag: str) -> bytes | None:
    """A stateless `503 Service Unavailable` with Retry-After for a new INVITE, built from
    its text without sippy (RFC 3261 8.2.6: the Vias, From, To with a tag of ours,
    Call-ID and CSeq copied); None when `data` is not a new INVITE or does not parse."""
    if not data.startswith(b"INVITE "):
        return None
    try:
        head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        return None
    keep = {"via": [], "from": [], "to": [], "call-id": [], "cseq": []}
    for line in head.split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        name = _COMPACT.get(name, name)
        if sep and name in keep:
            keep[name].append(value.strip())
    if not keep["via"] or any(len(keep[h]) != 1 for h in ("from", "to", "call-id", "cseq")):
        return None
    to = keep["to"][0]
    if ";tag=" in to.replace(" ", "").lower():
        return None                      # in a dialog: never shed here
    lines = [f"SIP/2.0 503 Service Unavailable ({why})"]
    lines += [f"Via: {v}" for v in keep["via"]]
    lines += [f"From: {keep['from'][0]}", f"To: {to};tag={SHED_TAG}{tag}",
              f"Call-ID: {keep['call-id'][0]}", f"CSeq: {keep['cseq'][0]}",
              f"Retry-After: {RETRY_AFTER_S}", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def new_invite_call_id(data: bytes) -> bytes | None:
    """The Call-ID of a new INVITE (no To tag), read from its bytes without sippy; None
    for anything else, or when it has no single Call-ID."""
    if not data.startswith(b"INVITE "):
        return None
    cid, to = [], None
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        name = name.strip().lower()
        if name in (b"call-id", b"i"):
            cid.append(value.strip())
        elif name in (b"to", b"t"):
            to = value
    if len(cid) != 1 or to is None or b";tag=" in to.replace(b" ", b"").lower():
        return None
    return cid[0]


class Decisions:
    """What the door did with each recent new INVITE: taken (queued for sippy) or shed.
    A retransmission gets the same answer as its first copy. Shedding a retransmission
    of an INVITE that sippy already holds gave the caller a 503 and then, from sippy, a
    200 for a call it had ended: a stray answer that found a later caller on the same
    port (a matrix run read it in that caller's trace). Bounded: the oldest go first;
    MAX covers more than Timer B (32 s) of INVITEs at a few hundred calls/s."""
    MAX = 16384

    def __init__(self):
        self._seen: dict[bytes, bool] = {}     # insertion-ordered: Call-ID -> shed

    def get(self, call_id: bytes) -> bool | None:
        return self._seen.get(call_id)

    def put(self, call_id: bytes, shed: bool) -> None:
        self._seen[call_id] = shed
        if len(self._seen) > self.MAX:
            del self._seen[next(iter(self._seen))]


def is_shed_ack(data: bytes) -> bool:
    """The caller's ACK of a 503 sent by fast_busy (nothing in sippy knows its transaction)."""
    return data.startswith(b"ACK ") and f";tag={SHED_TAG}".encode() in data
