"""MTP3 (Q.704) over one linkset: two or more M2PA links to one adjacent signalling point.

- Every MSU starts with the SIO (service indicator: 0 network management, 3 SCCP,
  5 ISUP; network indicator) and the routing label (DPC, OPC, SLS), coded by pycrate's
  SIGTRAN.MTP3 (ITU, 14-bit point codes). pycrate 0.7.8's MTP3.set_val({"OPC": ...})
  puts the OPC's bit 1 where its bit 0 belongs (it masks with 0x2), so `encode_msu`
  sets the point codes' fields one by one.
- Load sharing: SLS s (of 16) belongs to its home link, slcs[s * n // 16] (contiguous
  blocks); while the home is unavailable it goes on one of the others. `status()` counts the user MSUs per link.
- Changeover (Q.704 5): when a link fails, its SLSs' new traffic is held and COO, with
  the FSN of the last MSU accepted on that link, goes to the peer on another link; the
  peer answers COA with its own (a COO received first is answered with COA and stands
  for the acknowledgement). The MSUs the peer had not accepted go again on the
  alternative link, in order, then the held ones: each MSU once, in order per SLS. No
  answer within t2_s: time-controlled diversion, the unacknowledged MSUs are discarded
  (as Q.704 allows). The time from the failure's detection to the diverted traffic
  handed to the other link is each changeover's `seconds`.
- Changeback (Q.704 6): when a home link is in service again, its SLSs' traffic is held
  and CBD goes on the link that carried it, behind everything sent there; the peer's CBA
  restarts it on the home link. No CBA within t4_s: restarted anyway.
- Restoration: a listening port takes the next connection as the link's new one; a
  connecting port connects again restore_s after its link failed.

Everything runs under one lock, the links' too (m2pa.Link takes it), so a procedure
never interleaves with an MSU accepted or sent. on_message(msu, slc) is called under it.
"""
from __future__ import annotations

import socket
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional

from pycrate_mobile import ISUP, SIGTRAN

from emulator.tmedia.log import log as log_line

from . import m2pa, snm

SI_SNM, SI_SCCP, SI_ISUP = 0, 3, 5
NI_INTERNATIONAL, NI_NATIONAL = 0, 2
SLS_COUNT = 16
LABEL_LEN = 5                  # SIO + routing label
T2_S = 1.0                     # wait for COA (Q.704 T2: 0.7 to 2 s)
T4_S = 1.0                     # wait for CBA (Q.704 T4: 0.5 to 1.2 s)
RESTORE_S = 0.2                # a connecting port's pause before connecting again


class Mtp3Error(Exception):
    """An MSU too short for its label, or a value out of its field."""


@dataclass(frozen=True)
class Msu:
    si: int
    ni: int
    opc: int
    dpc: int
    sls: int
    sif: bytes                 # what follows the routing label


def encode_msu(m: Msu) -> bytes:
    for name, v, bits in (("SI", m.si, 4), ("NI", m.ni, 2), ("OPC", m.opc, 14),
                          ("DPC", m.dpc, 14), ("SLS", m.sls, 4)):
        if not 0 <= v < 1 << bits:
            raise Mtp3Error(f"{name} {v} out of range 0..{(1 << bits) - 1}")
    h = SIGTRAN.MTP3()
    for f, v in (("SubServiceInd", m.ni), ("ServiceInd", m.si), ("SLS", m.sls),
                 ("DPC_LSB", m.dpc & 0xFF), ("DPC_MSB", m.dpc >> 8),
                 ("OPC_LSB", m.opc & 0x3), ("OPC_M", (m.opc >> 2) & 0xFF),
                 ("OPC_MSB", m.opc >> 10)):
        h[f].set_val(v)
    return h.to_bytes() + m.sif


def decode_msu(b: bytes) -> Msu:
    if len(b) < LABEL_LEN:
        raise Mtp3Error(f"MSU of {len(b)} octets: shorter than SIO and routing label")
    h = SIGTRAN.MTP3()
    h.from_bytes(b[:LABEL_LEN])
    return Msu(h["ServiceInd"].get_val(), h["SubServiceInd"].get_val(), h["OPC"].get_val(),
               h["DPC"].get_val(), h["SLS"].get_val(), b[LABEL_LEN:])


def isup_sls(isup: bytes) -> int:
    """ISUP's SLS: the 4 low bits of the message's CIC (ITU ISUP), read by pycrate."""
    msg, err = ISUP.parse_ISUP(isup)
    if err:
        raise Mtp3Error(f"not an ISUP message pycrate can parse (error {err})")
    return msg["CIC"].get_val() & 0xF


@dataclass(frozen=True)
class Port:
    """How link `slc` is carried: a TCP port it listens on, an address it connects to, or
    neither: a link object handed over with `Linkset.adopt` (a link another process
    terminates, see spread.py)."""
    slc: int
    listen: Optional[tuple[str, int]] = None
    connect: Optional[tuple[str, int]] = None


@dataclass
class _Changeover:
    slc: int
    link: m2pa.Link            # the failed link: its buffers are retrieved
    sls: list[int]
    started: float             # failure detected
    via: Optional[int] = None
    timer: Optional[threading.Timer] = None


@dataclass
class _Changeback:
    code: int
    slc: int                   # the home link the traffic goes back to
    via: int                   # the link that carried it meanwhile
    sls: list[int]
    started: float
    timer: Optional[threading.Timer] = None


class Linkset:
    def __init__(self, name: str, opc: int, dpc: int, ports: list[Port], *,
                 ni: int = NI_NATIONAL, proving_s: float = m2pa.PROVING_S,
                 t2_s: float = T2_S, t4_s: float = T4_S, restore_s: float = RESTORE_S,
                 on_message: Optional[Callable[[Msu, int], None]] = None,
                 log: Optional[Callable[[str], None]] = None,
                 clock: Callable[[], float] = time.monotonic, lock=None):
        slcs = [p.slc for p in ports]
        if not ports or len(set(slcs)) != len(slcs) or not all(0 <= s < 16 for s in slcs):
            raise ValueError(f"links need distinct SLCs 0..15, got {slcs}")
        if any(p.listen is not None and p.connect is not None for p in ports):
            raise ValueError("a port either listens or connects")
        self.name, self.opc, self.dpc, self.ni = name, opc, dpc, ni
        self.proving_s, self.t2_s, self.t4_s, self.restore_s = proving_s, t2_s, t4_s, restore_s
        self.on_message, self.clock = on_message, clock
        self.log = log or partial(log_line, name)
        self.lock = lock if lock is not None else threading.RLock()
        self._cond = threading.Condition(self.lock)
        self.ports = {p.slc: p for p in ports}
        self.slcs = sorted(slcs)
        self.links: dict[int, Optional[m2pa.Link]] = {s: None for s in self.slcs}
        self.route: dict[int, Optional[int]] = {s: None for s in range(SLS_COUNT)}
        self.held: dict[int, list[bytes]] = {}      # SLS -> MSUs held by a procedure
        self._co: dict[int, _Changeover] = {}
        self._co_link: dict[int, m2pa.Link] = {}    # the last changed-over link per SLC
        self._cb: dict[int, _Changeback] = {}       # by changeback code
        self._peer_coo: set[int] = set()
        self._code = 0
        self.traffic = {s: {"tx": 0, "rx": 0} for s in self.slcs}
        self.snm_tx: Counter = Counter()
        self.snm_rx: Counter = Counter()
        self.changeovers: list[dict] = []
        self.changebacks: list[dict] = []
        self.dropped = 0                            # no link to send on
        self.errors: Counter = Counter()
        self._listeners: dict[int, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._timers: set[threading.Timer] = set()
        self._stopped = threading.Event()

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> "Linkset":
        for slc, p in self.ports.items():
            if p.listen:
                s = socket.create_server(p.listen)
                self._listeners[slc] = s
                target, args = self._accept_loop, (slc, s)
            elif p.connect:
                target, args = self._connect_loop, (slc, p.connect)
            else:
                continue                         # adopted

            t = threading.Thread(target=target, args=args, name=f"mtp3-{self.name}-{slc}",
                                 daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def listen_port(self, slc: int) -> int:
        return self._listeners[slc].getsockname()[1]

    def stop(self) -> None:
        self._stopped.set()
        with self.lock:
            for t in self._timers:
                t.cancel()
            for link in self.links.values():
                if link is not None:
                    link.stop()
            self._cond.notify_all()
        for s in self._listeners.values():
            try:
                s.shutdown(socket.SHUT_RDWR)       # wakes accept(); close() alone does not
            except OSError:
                pass
            s.close()
        for t in self._threads:
            t.join(3.0)

    # -- traffic ----------------------------------------------------------------------

    def home(self, sls: int) -> int:
        """SLSs in contiguous blocks per link (0-7 and 8-15 over two): ISUP's SLS is the
        CIC's low bits, and each side seizes the circuits it controls (even or odd CICs,
        isup.py), so `sls % 2` put one side's every call on one link (measured: 50 calls/s
        from the far end, all on link 0)."""
        return self.slcs[sls * len(self.slcs) // SLS_COUNT]

    def send(self, si: int, sls: int, sif: bytes) -> None:
        """One MSU of a user part (SI 3 SCCP, 5 ISUP, ...) to the adjacent point."""
        if si == SI_SNM:
            raise ValueError("network management messages are MTP3's own")
        msu = encode_msu(Msu(si, self.ni, self.opc, self.dpc, sls, sif))
        with self.lock:
            self._transmit(sls, msu)

    def status(self) -> dict:
        with self.lock:
            links = {}
            for slc in self.slcs:
                link = self.links[slc]
                st = link.status() if link else {"state": m2pa.OUT}
                links[slc] = {**st, "traffic_tx": self.traffic[slc]["tx"],
                              "traffic_rx": self.traffic[slc]["rx"]}
            return {"name": self.name, "opc": self.opc, "dpc": self.dpc, "links": links,
                    "sls": dict(self.route), "held": {s: len(m) for s, m in self.held.items()},
                    "changeovers": list(self.changeovers), "changebacks": list(self.changebacks),
                    "last_changeover_s": (self.changeovers[-1]["seconds"]
                                          if self.changeovers else None),
                    "snm_tx": dict(self.snm_tx), "snm_rx": dict(self.snm_rx),
                    "dropped": self.dropped, "errors": dict(self.errors)}

    def settled(self) -> bool:
        """Every link in service, every SLS on its home link, no procedure running."""
        with self.lock:
            return (all(self._usable(s) for s in self.slcs) and not self.held
                    and all(self.route[s] == self.home(s) for s in range(SLS_COUNT)))

    # -- under the lock ---------------------------------------------------------------

    def _usable(self, slc: Optional[int]) -> bool:
        link = self.links.get(slc)
        return link is not None and link.state == m2pa.IN_SERVICE

    def _target(self, sls: int) -> Optional[int]:
        avail = [s for s in self.slcs if self._usable(s)]
        if not avail:
            return None
        home = self.home(sls)
        return home if home in avail else avail[sls % len(avail)]

    def _alternative(self, slc: int) -> Optional[int]:
        return next((s for s in self.slcs if s != slc and self._usable(s)), None)

    def _transmit(self, sls: int, msu: bytes) -> None:
        if sls in self.held:
            self.held[sls].append(msu)
            return
        slc = self.route[sls]
        if not self._usable(slc):
            self.dropped += 1
            return
        self.links[slc].send(msu)
        self.traffic[slc]["tx"] += 1

    def _release(self, sls_list) -> None:
        for sls in sls_list:
            for msu in self.held.pop(sls, []):
                self._transmit(sls, msu)

    def _send_snm(self, via: Optional[int], about: int, m: snm.SnmMessage) -> None:
        if not self._usable(via):
            self.errors[f"{m.name} not sent: no link"] += 1
            return
        self.links[via].send(encode_msu(Msu(SI_SNM, self.ni, self.opc, self.dpc, about,
                                            snm.encode(m))))
        self.snm_tx[m.name] += 1

    def _timer(self, delay: float, fn, *args) -> threading.Timer:
        def fire():
            with self.lock:
                self._timers.discard(t)
                if not self._stopped.is_set():
                    fn(*args)
        t = threading.Timer(delay, fire)
        t.daemon = True
        self._timers.add(t)
        t.start()
        return t

    def _cancel(self, t: Optional[threading.Timer]) -> None:
        if t is not None:
            t.cancel()
            self._timers.discard(t)

    def _settle(self) -> None:
        """SLSs with no route take one at once (nothing of theirs is in flight); SLSs away
        from a home link that is in service again change back to it."""
        for sls in range(SLS_COUNT):
            if self.route[sls] is None and sls not in self.held:
                self.route[sls] = self._target(sls)
        groups = defaultdict(list)
        for sls in range(SLS_COUNT):
            via, home = self.route[sls], self.home(sls)
            if (via is not None and via != home and sls not in self.held
                    and self._usable(home) and self._usable(via)):
                groups[(home, via)].append(sls)
        for (home, via), sls_list in groups.items():
            code, self._code = self._code, (self._code + 1) % 256
            for sls in sls_list:
                self.held[sls] = []
            cb = _Changeback(code, home, via, sls_list, self.clock())
            self._cb[code] = cb
            self._send_snm(via, home, snm.SnmMessage("CBD", code))
            cb.timer = self._timer(self.t4_s, self._changeback_done, cb, "timer")

    def _changeback_done(self, cb: _Changeback, how: str) -> None:
        if self._cb.get(cb.code) is not cb:
            return
        del self._cb[cb.code]
        self._cancel(cb.timer)
        for sls in cb.sls:
            self.route[sls] = cb.slc if self._usable(cb.slc) else self._target(sls)
        self._release(cb.sls)
        seconds = round(self.clock() - cb.started, 4)
        self.changebacks.append({"slc": cb.slc, "from": cb.via, "sls": cb.sls, "code": cb.code,
                                 "by": how, "seconds": seconds})
        self.log(f"changeback to link {cb.slc} from {cb.via} by {how} in {seconds} s")

    def _on_state(self, slc: int, link: m2pa.Link, state: str) -> None:
        if state == m2pa.IN_SERVICE:
            self.log(f"link {slc} in service")
            self._settle()
        elif state == m2pa.FAILED:
            self.log(f"link {slc} failed: {link.failure}")
            self._link_failed(slc, link)
            self._cond.notify_all()

    def _link_failed(self, slc: int, link: m2pa.Link) -> None:
        peer_ordered = slc in self._peer_coo
        self._peer_coo.discard(slc)
        for cb in list(self._cb.values()):
            if slc in (cb.slc, cb.via):
                del self._cb[cb.code]
                self._cancel(cb.timer)
                if cb.slc == slc:               # going back to the failed link: stay put
                    self._release(cb.sls)
                # via failed: the SLSs are still routed on it and change over below
        if m2pa.IN_SERVICE not in (s for _, s in link.states):
            return                              # failed while aligning: carried nothing
        if slc in self._co:                     # a previous failure's changeover unanswered
            self._changeover_done(self._co[slc], None, 24, "superseded")
        sls_list = [s for s in range(SLS_COUNT) if self.route[s] == slc]
        for sls in sls_list:
            self.held.setdefault(sls, [])
        co = _Changeover(slc, link, sls_list, link.failed_at or self.clock())
        self._co[slc] = co
        co.via = self._alternative(slc)
        if co.via is None:
            self._changeover_done(co, None, 24, "no alternative link")
        elif not peer_ordered:
            self._send_snm(co.via, slc, snm.SnmMessage("COO", link.last_accepted() % 128))
            co.timer = self._timer(self.t2_s, self._changeover_timeout, co)
        # peer_ordered: _on_coo answers with COA and completes it

    def _changeover_timeout(self, co: _Changeover) -> None:
        if self._co.get(co.slc) is co:
            self._changeover_done(co, None, 24, "timer")

    def _changeover_done(self, co: _Changeover, peer_fsn: Optional[int], bits: int,
                         how: str) -> None:
        self._co.pop(co.slc, None)
        self._co_link[co.slc] = co.link
        self._cancel(co.timer)
        pending = co.link.unacknowledged()
        retrieved = co.link.retrieve(peer_fsn, bits)
        if retrieved is None:                   # an FSN we never sent: divert by time
            self.errors["changeover FSN names no unacknowledged MSU"] += 1
            peer_fsn, retrieved = None, co.link.retrieve(None)
        discarded = pending - len(retrieved) if peer_fsn is None else 0
        for sls in co.sls:
            self.route[sls] = self._target(sls)
        # the retrieved MSUs go before anything held meanwhile, SLS by SLS
        mine = set(co.sls)
        per_sls = defaultdict(list)
        for msu in retrieved:
            m = decode_msu(msu)
            if m.si == SI_SNM:
                self.errors["stale network management message not retransmitted"] += 1
                continue
            per_sls[m.sls].append(msu)
        for sls, msus in per_sls.items():
            if sls in self.held:
                self.held[sls][:0] = msus       # released by the procedure holding it
            else:
                self.held[sls] = msus
                mine.add(sls)
        held = sum(len(self.held.get(s, ())) for s in mine) - sum(map(len, per_sls.values()))
        self._release(sorted(mine))
        seconds = round(self.clock() - co.started, 4)
        self.changeovers.append({"slc": co.slc, "via": co.via, "by": how, "sls": co.sls,
                                 "retrieved": sum(map(len, per_sls.values())),
                                 "held": held, "discarded": discarded, "seconds": seconds,
                                 "at": round(time.time(), 3)})
        self.log(f"changeover from link {co.slc} to {co.via} by {how} in {seconds} s "
                 f"({len(retrieved)} retrieved, {held} held, {discarded} discarded)")
        self._settle()

    def _on_coo(self, slc: int, fsn: int, bits: int, via: int) -> None:
        link = self.links[slc]
        if link is not None and link.state == m2pa.IN_SERVICE:
            self._peer_coo.add(slc)             # the peer saw the failure first
            link.fail("changeover order from the peer")
        co = self._co.get(slc)
        ours = co.link if co else self._co_link.get(slc) or link
        accepted = ours.last_accepted() if ours else m2pa.SEQ_MOD - 1
        order, answer = ("COO", "COA") if bits == 7 else ("XCO", "XCA")
        self._send_snm(via if self._usable(via) else self._alternative(slc), slc,
                       snm.SnmMessage(answer, accepted % (1 << bits)))
        if co:
            self._changeover_done(co, fsn, bits, order)

    def _on_msu(self, slc: int, link: m2pa.Link, msu: bytes) -> None:
        try:
            m = decode_msu(msu)
        except Mtp3Error:
            self.errors["undecodable MSU"] += 1
            return
        if m.si == SI_SNM:
            self._on_snm(slc, m)
            return
        self.traffic[slc]["rx"] += 1
        if m.dpc != self.opc:
            self.errors["MSU for another point code"] += 1
            return
        if self.on_message:
            self.on_message(m, slc)

    def _on_snm(self, slc: int, m: Msu) -> None:
        try:
            s = snm.decode(m.sif)
        except snm.SnmError as e:
            self.errors[f"network management: {e}"] += 1
            return
        self.snm_rx[s.name] += 1
        about = m.sls                            # the SLC the message is about
        if about not in self.links:
            self.errors[f"{s.name} about unknown link {about}"] += 1
        elif s.name in ("COO", "XCO"):
            self._on_coo(about, s.value, snm.FSN_BITS[s.name], slc)
        elif s.name in ("COA", "XCA"):
            co = self._co.get(about)
            if co:
                self._changeover_done(co, s.value, snm.FSN_BITS[s.name], s.name)
        elif s.name == "CBD":
            self._send_snm(slc, about, snm.SnmMessage("CBA", s.value))
        elif s.name == "CBA":
            cb = self._cb.get(s.value)
            if cb and cb.slc == about:
                self._changeback_done(cb, "CBA")

    # -- connections ------------------------------------------------------------------

    def _attach(self, slc: int, sock: socket.socket) -> None:
        with self.lock:
            if self._stopped.is_set():
                sock.close()
                return
            old = self.links[slc]
            if old is not None and old.state not in (m2pa.FAILED, m2pa.OUT):
                old.fail("replaced by a new connection")
            link = m2pa.Link(sock, f"{self.name}/{slc}", proving_s=self.proving_s,
                             lock=self.lock, on_msu=partial(self._on_msu, slc),
                             on_state=partial(self._on_state, slc), clock=self.clock)
            self.links[slc] = link
            link.start()

    def adopt(self, slc: int, link) -> None:
        self.adopt_links({slc: link})

    def adopt_links(self, links: dict) -> None:
        """Take each link (an m2pa.Link made with this linkset's lock, or one that stands
        for it, see spread.py) as the link of its SLC, a port that neither listens nor
        connects. Routes are set once all are in; then a failed one changes over (it
        carried traffic before: its COO goes out)."""
        for slc, link in links.items():
            p = self.ports.get(slc)
            if p is None or p.listen or p.connect:
                raise ValueError(f"link {slc} is not an adopted port of {self.name}")
            if link.lock is not self.lock:
                raise ValueError("an adopted link shares the linkset's lock")
        with self.lock:
            for slc, link in links.items():
                old = self.links[slc]
                if old is not None and old is not link and old.state not in (m2pa.FAILED, m2pa.OUT):
                    old.fail("replaced by an adopted link")
                self.links[slc] = link
                link.on_msu = partial(self._on_msu, slc)
                link.on_state = partial(self._on_state, slc)
                self.log(f"link {slc} adopted ({link.state})")
            self._settle()
            for slc, link in links.items():
                if link.state == m2pa.FAILED:
                    self._on_state(slc, link, m2pa.FAILED)

    def _alive(self, slc: int) -> bool:
        link = self.links[slc]
        return link is not None and link.state not in (m2pa.FAILED, m2pa.OUT)

    def _accept_loop(self, slc: int, lsock: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            self._attach(slc, conn)

    def _connect_loop(self, slc: int, addr: tuple[str, int]) -> None:
        first = True
        while not self._stopped.is_set():
            with self._cond:
                while self._alive(slc) and not self._stopped.is_set():
                    self._cond.wait(1.0)
            if not first and self._stopped.wait(self.restore_s):
                return
            first = False
            try:
                sock = socket.create_connection(addr, timeout=2.0)
            except OSError:
                continue
            sock.settimeout(None)
            self._attach(slc, sock)
