"""ISUP basic call control (Q.764 2.1-2.3, simplified) over one MTP3 linkset.

A circuit (CIC) belongs to a trunk group and is in one call state:

    idle -> outgoing (IAM sent) | incoming (IAM received)
         -> alerting (ACM)  -> answered (ANM)
         -> releasing (REL sent, waiting for RLC) -> idle
    any call state + REL received -> RLC sent -> idle
    releasing for t5_s without RLC -> resetting (RSC sent, repeated every t1_s) -> idle on RLC

What is simplified, and why it is enough here:
- Numbers go en bloc in the IAM, so ACM is sent at once on an IAM (no SAM, no T35);
  ANM follows after `answer_after_s` (None: only when `answer()` is called).
- T1 (REL repeated, Q.764 15-60 s) and T5 (then RSC, 5-15 min) are short and
  configurable; T7 (no ACM after the IAM, 20-30 s) releases with cause 102. T9 and the
  other timers are not run. No continuity check. A trunk group marked down (the
  circuits of a failed unit): its busy calls are released with cause 41 (temporary
  failure: their bearer is gone), and its circuits are blocked at the far end with
  circuit group blocking (CGB, maintenance oriented, Q.764 2.8.2; CGU when the group is
  up again), so the far end's new calls go on circuits that work; an IAM that crossed
  the CGB is refused with REL cause 44 (requested circuit not available). Group
  messages are acknowledged (CGBA, CGUA) but not repeated (no T18-T21), and single
  circuit blocking (BLO) is not sent. A trunk group set refusing (its unit's SS7 stack
  disabled by the operator) releases each new IAM at once with the cause given (63,
  service not available); its calls up go on.
- Dual seizure (Q.764 2.9.1.4): the point with the higher point code controls the even
  CICs, the other the odd ones. An IAM on a circuit where our IAM got no backward message
  yet: if we control the circuit the IAM is ignored, otherwise our call backs off (outcome
  "glare", re-attempted once on another circuit) and the IAM is served. Outgoing calls
  prefer the circuits we control, as Q.764 advises: the lowest free one, or with
  hunt="random" any free one (spreading calls over the trunk groups; seeded, so a run
  can be repeated).
- A message that does not fit the state is counted in `errors` and dropped (Q.764 2.10
  would reset the circuit in some of these cases).

Threads: the linkset calls `on_message` under its own lock, so received messages only go
on a queue here; one worker handles them under this module's lock, and so do the timers
and the API. Our lock is always taken before the linkset's (we send while holding it),
never the other way round, so the two cannot deadlock.

Replication: every circuit is a small JSON-able dict (`circuit_dict`); `snapshot()` has
all of them, `on_update(dict)` is called after each change, and `restore()` / `apply()`
load them into another instance (a standby on another linkset endpoint). `take_over()`
then restarts what the old instance was waiting for: REL or RSC sent again at once (the
far end answers a repeated REL with RLC), T7 and the answer delay started again. An
answered call carries on: either side can release it.
"""
from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Optional

from pycrate_mobile import ISUP as P

from .mtp3 import SI_ISUP, Msu

IDLE, OUTGOING, INCOMING, ALERTING, ANSWERED, RELEASING, RESETTING = (
    "idle", "outgoing", "incoming", "alerting", "answered", "releasing", "resetting")
BUSY = (OUTGOING, INCOMING, ALERTING, ANSWERED)

# Q.850 causes used here
NORMAL_CLEARING, TEMPORARY_FAILURE, CIRCUIT_NOT_AVAILABLE, TIMER_EXPIRY = 16, 41, 44, 102
SERVICE_NOT_AVAILABLE = 63      # a trunk group refusing new calls (its unit's SS7 stack disabled)
T1_S, T5_S, T7_S = 0.5, 3.0, 10.0

MSG_IAM, MSG_ACM, MSG_ANM, MSG_REL, MSG_RLC, MSG_RSC = 1, 6, 9, 12, 16, 18
MSG_CGB, MSG_CGU, MSG_CGBA, MSG_CGUA = 24, 25, 26, 27
GROUP_MESSAGES = {MSG_CGB: "CGB", MSG_CGU: "CGU", MSG_CGBA: "CGBA", MSG_CGUA: "CGUA"}
MAX_RANGE = 32                # circuits one group message covers (Q.763 3.43: range 1..31)


@dataclass
class Call:
    cic: int
    direction: str                     # "out" (we sent the IAM) or "in"
    called: str
    t_iam: float                       # wall-clock stamps, comparable across processes
    t_acm: Optional[float] = None
    t_anm: Optional[float] = None
    t_rel: Optional[float] = None
    t_rlc: Optional[float] = None
    cause: Optional[int] = None
    released_by: Optional[str] = None  # "local" or "remote"
    outcome: Optional[str] = None      # set when it ends: answered, unanswered, glare, reset
    rel_sent: int = 0                  # how many times our REL went out
    reattempt_of: Optional[int] = None
    ref: Optional[str] = None          # the placer's name for it (the interworking's SIP call)


@dataclass
class Circuit:
    cic: int
    group: str
    state: str = IDLE
    call: Optional[Call] = None
    since: float = field(default_factory=time.monotonic)   # start of the current wait
    timer: Optional[threading.Timer] = field(default=None, repr=False)


def circuit_dict(c: Circuit) -> dict:
    return {"cic": c.cic, "group": c.group, "state": c.state,
            "call": asdict(c.call) if c.call else None}


# -- codec: pycrate builds and parses every message ---------------------------------------

def encode_iam(cic: int, called: str) -> bytes:
    # pycrate does not set the odd/even indicator from the digits: an odd count with OE 0
    # reads back with the filler digit 0 appended, so it is set here.
    return P.InitialAddress(val={"CIC": cic, "CalledPartyNum": {"CalledPartyNum": {
        "OE": len(called) % 2, "NAI": 3, "NumPlan": 1, "Num": called}}}).to_bytes()


def encode_rel(cic: int, cause: int, location: int = 2) -> bytes:
    # pycrate's default ext bit of the cause's first octet is 0 ("octet 3a follows"), which
    # would make the far end read the next octet as a recommendation: set to 1.
    return P.Release(val={"CIC": cic, "CauseInd": {"CauseInd": {
        "ext": 1, "Location": location, "Class": cause >> 4, "Cause": cause & 0xF}}}).to_bytes()


def encode(kind: int, cic: int) -> bytes:
    cls = {MSG_ACM: P.AddressComplete, MSG_ANM: P.Answer, MSG_RLC: P.ReleaseComplete,
           MSG_RSC: P.ResetCircuit}[kind]
    return cls(val={"CIC": cic}).to_bytes()


def encode_group(kind: int, first: int, cics: Iterable[int]) -> bytes:
    """CGB/CGU (or their acks) for circuits first..first+31: the range and the status bits
    (bit i: circuit first+i), maintenance oriented."""
    cics = sorted(cics)
    n = cics[-1] - first + 1
    if cics[0] < first or n > MAX_RANGE:
        raise ValueError(f"CICs {cics} out of one range from {first}")
    bits = sum(1 << (c - first) for c in cics)
    cls = {MSG_CGB: P.CircuitGroupBlocking, MSG_CGU: P.CircuitGroupUnblocking,
           MSG_CGBA: P.CircuitGroupBlockingAck, MSG_CGUA: P.CircuitGroupUnblockingAck}[kind]
    return cls(val={"CIC": first, "CircuitGroupSupervis": {"Value": 0}, "RangeStatus": {
        "RangeStatus": {"Range": n - 1, "Status": bits.to_bytes((n + 7) // 8, "little")}}}).to_bytes()


def group_ranges(cics: Iterable[int]) -> list[tuple[int, list[int]]]:
    """Sorted CICs cut into (first, cics) pieces that one group message each covers."""
    out: list[tuple[int, list[int]]] = []
    for c in sorted(cics):
        if out and c - out[-1][0] < MAX_RANGE:
            out[-1][1].append(c)
        else:
            out.append((c, [c]))
    return out


def decode(sif: bytes) -> tuple[int, int, dict]:
    """(message type, CIC, fields) of an ISUP message; ValueError if pycrate cannot parse it."""
    msg, err = P.parse_ISUP(sif)
    if err or msg is None:
        raise ValueError(f"not an ISUP message pycrate can parse (error {err})")
    kind, cic, fields = msg["Type"].get_val(), msg["CIC"].get_val(), {}
    if kind == MSG_IAM:
        num = msg["CalledPartyNum"]["CalledPartyNum"]
        digits = num["Num"].decode()
        # pycrate decodes the filler of an odd number as a digit: drop it
        fields["called"] = digits[:-1] if num["OE"].get_val() and digits else digits
    elif kind == MSG_REL:
        ci = msg["CauseInd"]["CauseInd"]
        fields["cause"] = (ci["Class"].get_val() << 4) | ci["Cause"].get_val()
    elif kind in GROUP_MESSAGES:
        rs = msg["RangeStatus"]["RangeStatus"]
        n = rs["Range"].get_val() + 1
        bits = int.from_bytes(rs["Status"].get_val() or b"", "little")
        fields["cics"] = [cic + i for i in range(n) if bits >> i & 1]
    return kind, cic, fields


class Isup:
    def __init__(self, name: str, opc: int, dpc: int, groups: dict[str, Iterable[int]], *,
                 send: Optional[Callable[[int, int, bytes], None]] = None,
                 answer_after_s: Optional[float] = None,
                 t1_s: float = T1_S, t5_s: float = T5_S, t7_s: float = T7_S,
                 on_call_end: Optional[Callable[[Call], None]] = None,
                 on_event: Optional[Callable[[str, Call], None]] = None,
                 on_update: Optional[Callable[[dict], None]] = None, hunt: str = "lowest"):
        self.name, self.opc, self.dpc = name, opc, dpc
        self.send_msu = send                   # mtp3.Linkset.send(si, sls, sif)
        self.answer_after_s = answer_after_s
        self.t1_s, self.t5_s, self.t7_s = t1_s, t5_s, t7_s
        self.on_call_end, self.on_event, self.on_update = on_call_end, on_event, on_update
        if hunt not in ("lowest", "random"):
            raise ValueError(f"hunt must be lowest or random, not {hunt!r}")
        self.hunt, self._rng = hunt, random.Random(0)     # circuit selection (place_call)
        self.lock = threading.RLock()
        self.circuits: dict[int, Circuit] = {}
        for g, cics in groups.items():
            for cic in cics:
                if cic in self.circuits:
                    raise ValueError(f"CIC {cic} in two trunk groups")
                self.circuits[cic] = Circuit(cic, g)
        self.down: set[str] = set()
        self.refusing: dict[str, int] = {}     # trunk group -> the cause its new calls get
        self.blocked: set[int] = set()         # circuits the far end blocked (CGB)
        self.ended: list[Call] = []
        self.counts: Counter = Counter()       # messages by name, tx_/rx_
        self.errors: Counter = Counter()
        self._inbox: "queue.Queue[Optional[Msu]]" = queue.Queue()
        self._stopped = False
        self._worker = threading.Thread(target=self._work, name=f"isup-{name}", daemon=True)
        self._worker.start()

    # -- API ----------------------------------------------------------------------------

    def attach(self, send: Callable[[int, int, bytes], None]) -> None:
        self.send_msu = send

    def stop(self) -> None:
        with self.lock:
            self._stopped = True
            for c in self.circuits.values():
                self._cancel(c)
        self._inbox.put(None)
        self._worker.join(2.0)

    def controls(self, cic: int) -> bool:
        """Q.764 2.9.1.4: the higher point code controls the even circuits."""
        return (cic % 2 == 0) == (self.opc > self.dpc)

    def available(self, cic: int) -> bool:
        return self.circuits[cic].group not in self.down

    def place_call(self, called: str, cic: Optional[int] = None,
                   reattempt_of: Optional[int] = None, group: Optional[str] = None,
                   ref: Optional[str] = None) -> Optional[int]:
        """Seize a circuit (the given one, or an idle one we control first, of `group` when
        given) and send IAM. None when no circuit is free, or the group refuses new calls."""
        with self.lock:
            if group is not None and group in self.refusing:
                self.counts["refused"] += 1
                return None
            if cic is None:
                free = [c for c in self.circuits.values() if c.state == IDLE
                        and c.group not in self.down and c.cic not in self.blocked
                        and group in (None, c.group)]
                free.sort(key=lambda c: (not self.controls(c.cic), c.cic))
                if not free:
                    self.counts["no circuit"] += 1
                    return None
                c = free[0]
                if self.hunt == "random":     # any free one of those, all groups alike
                    c = self._rng.choice([x for x in free if self.controls(x.cic) == self.controls(c.cic)])
            else:
                c = self.circuits[cic]
                if c.state != IDLE or c.group in self.down:
                    raise ValueError(f"CIC {cic} is {self.status_of(c)}")
            c.state, c.call = OUTGOING, Call(c.cic, "out", called, time.time(),
                                              reattempt_of=reattempt_of, ref=ref)
            self._send(c.cic, encode_iam(c.cic, called), "IAM")
            self._arm(c, self.t7_s, self._t7)
            self._changed(c, "iam")
            return c.cic

    def answer(self, cic: int) -> None:
        with self.lock:
            c = self.circuits[cic]
            if c.state in (INCOMING, ALERTING):
                self._answer(c)

    def release(self, cic: int, cause: int = NORMAL_CLEARING) -> bool:
        """Send REL for a call of this circuit; False when it has no call to release."""
        with self.lock:
            c = self.circuits[cic]
            if c.state not in BUSY:
                return False
            self._send_rel(c, cause)
            return True

    def set_group_down(self, group: str, down: bool = True) -> None:
        """The trunk group's circuits become unavailable (or available again); the calls
        on them are released with cause 41, their bearer being gone."""
        with self.lock:
            if group not in {c.group for c in self.circuits.values()}:
                raise ValueError(f"no trunk group {group!r}")
            cics = [c.cic for c in self.circuits.values() if c.group == group]
            if not down:
                if group in self.down:
                    self.down.discard(group)
                    self._send_group(MSG_CGU, cics)
                return
            if group not in self.down:
                self.down.add(group)
                for cic in cics:
                    if self.circuits[cic].state in BUSY:
                        self._send_rel(self.circuits[cic], TEMPORARY_FAILURE)
                # the far end blocks them too: its new calls go on the circuits that work
                self._send_group(MSG_CGB, cics)

    def set_refusing(self, group: str, cause: Optional[int]) -> None:
        """New calls on the trunk group are released at once with `cause` (None: accepted
        again); the calls up on it go on. The operator's "stack disabled"."""
        with self.lock:
            if group not in {c.group for c in self.circuits.values()}:
                raise ValueError(f"no trunk group {group!r}")
            if cause is None:
                self.refusing.pop(group, None)
            else:
                self.refusing[group] = cause

    def status_of(self, c: Circuit) -> str:
        if c.group in self.down:
            return "down" if c.state == IDLE else f"{c.state} (down)"
        if c.cic in self.blocked:
            return "blocked" if c.state == IDLE else f"{c.state} (blocked)"
        return c.state

    def status(self) -> dict:
        with self.lock:
            per = {cic: self.status_of(c) for cic, c in sorted(self.circuits.items())}
            return {"name": self.name, "opc": self.opc, "dpc": self.dpc,
                    "circuits": per, "states": dict(Counter(per.values())),
                    "groups_down": sorted(self.down), "refusing": dict(self.refusing),
                    "counts": dict(self.counts),
                    "errors": dict(self.errors)}

    def state(self, cic: int) -> str:
        with self.lock:
            return self.circuits[cic].state

    def call(self, cic: int) -> Optional[Call]:
        with self.lock:
            return self.circuits[cic].call

    def idle(self) -> bool:
        with self.lock:
            return all(c.state == IDLE for c in self.circuits.values())

    # -- replication --------------------------------------------------------------------

    def snapshot(self) -> dict:
        with self.lock:
            return {"opc": self.opc, "dpc": self.dpc, "groups_down": sorted(self.down),
                    "blocked": sorted(self.blocked),
                    "circuits": [circuit_dict(c) for c in self.circuits.values()]}

    def apply(self, d: dict) -> None:
        """One circuit's dict (from a snapshot or `on_update`) loaded; no timer started.
        {"blocked": [...]}: the circuits the far end blocks."""
        with self.lock:
            if "blocked" in d:
                self.blocked = set(d["blocked"])
                return
            c = self.circuits.get(d["cic"])
            if c is None:
                self.errors["replicated CIC unknown here"] += 1
                return
            self._cancel(c)
            c.state = d["state"]
            c.call = Call(**d["call"]) if d["call"] else None
            c.since = time.monotonic()

    def restore(self, snap: dict, take_over: bool = True) -> None:
        if (snap["opc"], snap["dpc"]) != (self.opc, self.dpc):
            raise ValueError("snapshot of another signalling relation")
        with self.lock:
            self.down = set(snap["groups_down"])
            self.blocked = set(snap.get("blocked", ()))
            for d in snap["circuits"]:
                self.apply(d)
            if take_over:
                self.take_over()

    def take_over(self) -> None:
        """Start what the replicated states wait for (see the module docstring)."""
        with self.lock:
            for c in self.circuits.values():
                c.since = time.monotonic()
                if c.state == RELEASING:
                    self._send(c.cic, encode_rel(c.cic, c.call.cause), "REL")
                    c.call.rel_sent += 1
                    self._arm(c, self.t1_s, self._t1)
                elif c.state == RESETTING:
                    self._send(c.cic, encode(MSG_RSC, c.cic), "RSC")
                    self._arm(c, self.t1_s, self._t1)
                elif c.state == OUTGOING:
                    self._arm(c, self.t7_s, self._t7)
                elif c.state == ALERTING and c.call.direction == "in" and \
                        self.answer_after_s is not None:
                    self._arm(c, self.answer_after_s, self._answer)

    # -- received messages --------------------------------------------------------------

    def on_message(self, m: Msu, slc: int, replayed: bool = False) -> None:
        """mtp3.Linkset's on_message (called under the linkset's lock: only queued).
        `replayed`: a message a lost active may have handled already (spread.py hands
        them over at a takeover): one that does not fit its circuit's state is dropped
        without an answer, where a fresh one would be answered or counted as an error
        (a REL handled twice sent a second RLC onto a circuit the far end had seized
        again)."""
        if m.si == SI_ISUP:
            self._inbox.put((m, replayed))

    def _work(self) -> None:
        while (item := self._inbox.get()) is not None:
            with self.lock:
                if not self._stopped:
                    self._handle(*item)

    def _handled_already(self, kind: int, c: Circuit) -> bool:
        fits = {MSG_IAM: (IDLE,), MSG_ACM: (OUTGOING,), MSG_ANM: (OUTGOING, ALERTING),
                MSG_RLC: (RELEASING, RESETTING)}.get(kind)
        if kind == MSG_REL:
            return c.state == IDLE
        return fits is not None and c.state not in fits

    def _handle(self, m: Msu, replayed: bool = False) -> None:
        if m.opc != self.dpc:
            self.errors["ISUP from another point code"] += 1
            return
        try:
            kind, cic, f = decode(m.sif)
        except ValueError:
            self.errors["undecodable ISUP"] += 1
            return
        name = {MSG_IAM: "IAM", MSG_ACM: "ACM", MSG_ANM: "ANM", MSG_REL: "REL",
                MSG_RLC: "RLC", MSG_RSC: "RSC", **GROUP_MESSAGES}.get(kind)
        self.counts[f"rx_{name or kind}"] += 1
        if kind in GROUP_MESSAGES:
            self._rx_group(kind, cic, f["cics"])
            return
        c = self.circuits.get(cic)
        if c is None:
            self.errors["unequipped CIC"] += 1
            return
        if replayed and self._handled_already(kind, c):
            self.counts["replayed, handled already"] += 1
            return
        handler = {MSG_IAM: self._rx_iam, MSG_ACM: self._rx_acm, MSG_ANM: self._rx_anm,
                   MSG_REL: self._rx_rel, MSG_RLC: self._rx_rlc, MSG_RSC: self._rx_rsc}.get(kind)
        if handler is None:
            self.errors[f"message type {kind} not handled"] += 1
            return
        handler(c, f)

    def _rx_iam(self, c: Circuit, f: dict) -> None:
        lost = None
        if c.state == OUTGOING:                 # dual seizure
            if self.controls(c.cic):
                self.counts["glare won"] += 1
                return
            self.counts["glare lost"] += 1
            self._cancel(c)
            lost = c.call
            lost.outcome = "glare"
            self._finish(c)
        elif c.state != IDLE:
            self.errors[f"IAM in state {c.state}"] += 1
            return
        c.state, c.call = INCOMING, Call(c.cic, "in", f["called"], time.time())
        if lost:                                # once this circuit is taken by the IAM
            if self.place_call(lost.called, reattempt_of=lost.cic, group=c.group,
                               ref=lost.ref) is None and self.on_event:
                self.on_event("failed", lost)   # its placer hears the call is gone
        if c.group in self.down:
            self._send_rel(c, CIRCUIT_NOT_AVAILABLE)
            return
        if c.group in self.refusing:
            self.counts["refused"] += 1
            self._send_rel(c, self.refusing[c.group])
            return
        self._changed(c, "iam")
        self._send(c.cic, encode(MSG_ACM, c.cic), "ACM")
        c.state, c.call.t_acm = ALERTING, time.time()
        self._changed(c, "acm")
        if self.answer_after_s == 0:
            self._answer(c)
        elif self.answer_after_s is not None:
            self._arm(c, self.answer_after_s, self._answer)

    def _rx_acm(self, c: Circuit, f: dict) -> None:
        if c.state != OUTGOING:
            self.errors[f"ACM in state {c.state}"] += 1
            return
        self._cancel(c)                          # T7
        c.state, c.call.t_acm = ALERTING, time.time()
        self._changed(c, "acm")

    def _rx_anm(self, c: Circuit, f: dict) -> None:
        if c.state not in (OUTGOING, ALERTING) or c.call.direction != "out":
            self.errors[f"ANM in state {c.state}"] += 1
            return
        self._cancel(c)
        c.state, c.call.t_anm = ANSWERED, time.time()
        self._changed(c, "anm")

    def _rx_rel(self, c: Circuit, f: dict) -> None:
        # Q.764 2.3: RLC in every state, an idle circuit's too; a REL crossing ours
        # (both sides released) also ends the call at once.
        self._send(c.cic, encode(MSG_RLC, c.cic), "RLC")
        if c.call is None or c.state == IDLE:
            return
        self._cancel(c)
        if c.state != RELEASING:
            c.call.t_rel, c.call.cause, c.call.released_by = time.time(), f["cause"], "remote"
        c.call.t_rlc = time.time()
        self._finish(c)

    def _rx_rlc(self, c: Circuit, f: dict) -> None:
        if c.state not in (RELEASING, RESETTING):
            self.errors[f"RLC in state {c.state}"] += 1
            return
        self._cancel(c)
        if c.call:
            c.call.t_rlc = time.time()
        self._finish(c)

    def _rx_rsc(self, c: Circuit, f: dict) -> None:
        self._send(c.cic, encode(MSG_RLC, c.cic), "RLC")
        self._cancel(c)
        if c.call:
            c.call.outcome = c.call.outcome or "reset"
        self._finish(c)

    def _rx_group(self, kind: int, first: int, cics: list[int]) -> None:
        """The far end blocks (CGB) or unblocks (CGU) circuits: no new call of ours goes
        on a blocked one, a call on it goes on (maintenance oriented); acknowledged with
        the same range and status. Its acknowledgements of ours only count."""
        if kind in (MSG_CGBA, MSG_CGUA):
            return
        ours = [c for c in cics if c in self.circuits]
        if len(ours) != len(cics):
            self.errors["group message names unequipped CICs"] += 1
        if kind == MSG_CGB:
            self.blocked.update(ours)
        else:
            self.blocked.difference_update(ours)
        if cics:
            ack = MSG_CGBA if kind == MSG_CGB else MSG_CGUA
            self._send(first, encode_group(ack, first, cics), GROUP_MESSAGES[ack])
        if self.on_update:
            self.on_update({"blocked": sorted(self.blocked)})

    # -- under the lock -----------------------------------------------------------------

    def _send_group(self, kind: int, cics: list[int]) -> None:
        for first, piece in group_ranges(cics):
            self._send(first, encode_group(kind, first, piece), GROUP_MESSAGES[kind])

    def _send(self, cic: int, sif: bytes, name: str) -> None:
        self.counts[f"tx_{name}"] += 1
        if self.send_msu is None:
            self.errors["no linkset to send on"] += 1
            return
        self.send_msu(SI_ISUP, cic & 0xF, sif)  # the SLS is the CIC's 4 low bits

    def _changed(self, c: Circuit, event: Optional[str] = None) -> None:
        if self.on_update:
            self.on_update(circuit_dict(c))
        if event and self.on_event and c.call:
            self.on_event(event, c.call)

    def _answer(self, c: Circuit) -> None:
        if c.state not in (INCOMING, ALERTING):
            return
        self._cancel(c)
        self._send(c.cic, encode(MSG_ANM, c.cic), "ANM")
        c.state, c.call.t_anm = ANSWERED, time.time()
        self._changed(c, "anm")

    def _send_rel(self, c: Circuit, cause: int) -> None:
        self._cancel(c)
        c.call.t_rel, c.call.cause, c.call.released_by = time.time(), cause, "local"
        c.state, c.since = RELEASING, time.monotonic()
        self._send(c.cic, encode_rel(c.cic, cause), "REL")
        c.call.rel_sent += 1
        self._arm(c, self.t1_s, self._t1)
        self._changed(c, "rel")

    def _finish(self, c: Circuit) -> None:
        call = c.call
        c.state, c.call, c.since = IDLE, None, time.monotonic()
        self._changed(c)
        if call is None:
            return
        if call.outcome is None:
            call.outcome = "answered" if call.t_anm else "unanswered"
        self.ended.append(call)
        if self.on_call_end:
            self.on_call_end(call)

    # timers: one per circuit; a fired timer that is no longer the circuit's does nothing

    def _arm(self, c: Circuit, delay: float, fn: Callable[[Circuit], None]) -> None:
        self._cancel(c)

        def fire():
            with self.lock:
                if c.timer is t and not self._stopped:
                    c.timer = None
                    fn(c)
        t = threading.Timer(delay, fire)
        t.daemon = True
        c.timer = t
        t.start()

    @staticmethod
    def _cancel(c: Circuit) -> None:
        if c.timer is not None:
            c.timer.cancel()
            c.timer = None

    def _t1(self, c: Circuit) -> None:
        """No RLC yet: REL again every t1_s; after t5_s RSC instead, until an RLC."""
        if c.state == RELEASING and time.monotonic() - c.since < self.t5_s:
            self.counts["T1 expired"] += 1
            self._send(c.cic, encode_rel(c.cic, c.call.cause), "REL")
            c.call.rel_sent += 1
        elif c.state in (RELEASING, RESETTING):
            if c.state == RELEASING:
                self.counts["T5 expired"] += 1
                c.state = RESETTING
                self._changed(c)
            self._send(c.cic, encode(MSG_RSC, c.cic), "RSC")
        else:
            return
        self._arm(c, self.t1_s, self._t1)

    def _t7(self, c: Circuit) -> None:
        if c.state == OUTGOING:
            self.counts["T7 expired"] += 1
            self._send_rel(c, TIMER_EXPIRY)

