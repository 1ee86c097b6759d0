"""A TCAP (Q.773) dialogue user over SCCP connectionless class 0 (UDT) over MTP3.

Messages are pycrate's: TCAP by pycrate_asn1dir's TCAP_RAW (BER), the UDT by
pycrate_mobile.SCCP (addresses by point code and SSN, no global title). A dialogue:

    initiator: begin()  -> Begin(otid=A, invoke)            state "initiated"
    responder:          <- Continue(otid=B, dtid=A, result)  both "active"
    either:   cont()    -> Continue(otid, dtid, invoke); the other side answers each
                           invoke with a Continue carrying its returnResult
    either:   end()     -> End(dtid)                        "ended" on both sides

A Continue or End naming a transaction we do not have gets an Abort (p-abortCause 1,
unrecognizedTransactionID): that is how a far end learns that the node it talks to has
lost the dialogue. Each dialogue is a small dict; `snapshot()` / `restore()` (and
`on_update` / `apply` per dialogue) move them to a standby, which then continues and ends
a dialogue begun before the crash. No dialogue portion (application context), no
timers, no segmentation: enough for an open dialogue to survive a switchover.

Threads as in isup.py: received MSUs are queued (the linkset calls under its lock), one
worker handles them under our lock, and we only ever take the linkset's lock inside ours.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Callable, Optional

from pycrate_asn1dir import TCAP_RAW
from pycrate_mobile import SCCP

from .mtp3 import SI_SCCP, Msu

INITIATED, ACTIVE, ENDED, ABORTED = "initiated", "active", "ended", "aborted"
UNRECOGNIZED_TID = 1                       # p-abortCause
SSN_DEFAULT = 146                          # a national SSN, for the testbed's own user
OPCODE_DEFAULT = 59                        # any local opcode: the dialogue is the point

# pycrate_asn1dir's TCAP message is one module-level object that holds the value it last
# coded: the ISUP and TCAP workers of several instances share it, so it is locked.
_TC = TCAP_RAW.TCAP_Messages.TCAP_Message
_codec = threading.Lock()


def tid_bytes(tid: int) -> bytes:
    return tid.to_bytes(4, "big")


def encode_tcap(kind: str, body: dict) -> bytes:
    with _codec:
        _TC.set_val((kind, body))
        return _TC.to_ber()


def decode_tcap(ber: bytes) -> tuple[str, dict]:
    with _codec:
        try:
            _TC.from_ber(ber)
        except Exception as e:             # pycrate raises several unrelated types
            raise ValueError(f"not a TCAP message: {e}") from None
        return _TC.get_val()


def invoke(invoke_id: int, opcode: int) -> tuple:
    return ("basicROS", ("invoke", {"invokeId": ("present", invoke_id),
                                    "opcode": ("local", opcode)}))


def result(invoke_id: int) -> tuple:
    return ("basicROS", ("returnResult", {"invokeId": ("present", invoke_id)}))


def encode_udt(opc: int, ssn: int, dpc: int, peer_ssn: int, data: bytes) -> bytes:
    addr = {"AddrInd": {"RoutingInd": 1, "GTInd": 0, "SSNInd": 1, "PCInd": 1}}
    return SCCP.SCCPUnitData(val={
        "ProtocolClass": {"Handling": 0, "Class": 0},
        "CalledPartyAddr": {"Value": {**addr, "PC": dpc, "SSN": peer_ssn}},
        "CallingPartyAddr": {"Value": {**addr, "PC": opc, "SSN": ssn}},
        "Data": {"Value": data}}).to_bytes()


def decode_udt(sif: bytes) -> tuple[int, int, bytes]:
    """(called SSN, calling SSN, data) of a UDT; ValueError for anything else."""
    msg, err = SCCP.parse_SCCP(sif)
    if err or msg is None or msg["Type"].get_val() != 9:
        raise ValueError(f"not an SCCP UDT (error {err})")
    return (msg["CalledPartyAddr"]["Value"]["SSN"].get_val(),
            msg["CallingPartyAddr"]["Value"]["SSN"].get_val(), msg["Data"]["Value"].get_val())


@dataclass
class Dialogue:
    tid: int                               # our transaction id
    role: str                              # "initiator" or "responder"
    state: str
    peer_tid: Optional[int] = None
    t_begin: float = 0.0                   # wall clock
    t_end: Optional[float] = None
    invokes_sent: int = 0
    results_received: int = 0
    invokes_received: int = 0
    closed_by: Optional[str] = None        # "local", "remote", "abort"


class Tcap:
    def __init__(self, name: str, opc: int, dpc: int, *, ssn: int = SSN_DEFAULT,
                 peer_ssn: int = SSN_DEFAULT, first_tid: int = 1,
                 send: Optional[Callable[[int, int, bytes], None]] = None,
                 on_event: Optional[Callable[[str, Dialogue], None]] = None,
                 on_update: Optional[Callable[[dict], None]] = None):
        self.name, self.opc, self.dpc, self.ssn, self.peer_ssn = name, opc, dpc, ssn, peer_ssn
        self.send_msu, self.on_event, self.on_update = send, on_event, on_update
        self.next_tid = first_tid
        self.lock = threading.RLock()
        self.dialogues: dict[int, Dialogue] = {}
        self.closed: list[Dialogue] = []
        self.counts: Counter = Counter()
        self.errors: Counter = Counter()
        self._inbox: "queue.Queue[Optional[Msu]]" = queue.Queue()
        self._worker = threading.Thread(target=self._work, name=f"tcap-{name}", daemon=True)
        self._worker.start()

    def attach(self, send: Callable[[int, int, bytes], None]) -> None:
        self.send_msu = send

    def stop(self) -> None:
        self._inbox.put(None)
        self._worker.join(2.0)

    # -- API ----------------------------------------------------------------------------

    def begin(self, opcode: int = OPCODE_DEFAULT) -> int:
        with self.lock:
            d = Dialogue(self._new_tid(), "initiator", INITIATED, t_begin=time.time())
            self.dialogues[d.tid] = d
            d.invokes_sent += 1
            self._send(d.tid, "begin", {"otid": tid_bytes(d.tid),
                                        "components": [invoke(d.invokes_sent, opcode)]})
            self._changed(d, "begin")
            return d.tid

    def cont(self, tid: int, opcode: int = OPCODE_DEFAULT) -> None:
        with self.lock:
            d = self._active(tid)
            d.invokes_sent += 1
            self._send(tid, "continue", {"otid": tid_bytes(tid), "dtid": tid_bytes(d.peer_tid),
                                         "components": [invoke(d.invokes_sent, opcode)]})
            self._changed(d, "continue")

    def end(self, tid: int) -> None:
        with self.lock:
            d = self._active(tid)
            self._send(tid, "end", {"dtid": tid_bytes(d.peer_tid)})
            self._close(d, ENDED, "local")

    def state(self, tid: int) -> Optional[str]:
        with self.lock:
            d = self.dialogues.get(tid) or next((c for c in self.closed if c.tid == tid), None)
            return d.state if d else None

    def dialogue(self, tid: int) -> Optional[Dialogue]:
        with self.lock:
            return self.dialogues.get(tid) or next((c for c in self.closed if c.tid == tid),
                                                   None)

    # -- replication --------------------------------------------------------------------

    def snapshot(self) -> dict:
        with self.lock:
            return {"opc": self.opc, "ssn": self.ssn, "next_tid": self.next_tid,
                    "dialogues": [asdict(d) for d in self.dialogues.values()]}

    def apply(self, d: dict) -> None:
        with self.lock:
            dlg = Dialogue(**d)
            if dlg.state in (INITIATED, ACTIVE):
                self.dialogues[dlg.tid] = dlg
            else:
                self.dialogues.pop(dlg.tid, None)
            self.next_tid = max(self.next_tid, dlg.tid + 1)

    def restore(self, snap: dict) -> None:
        if (snap["opc"], snap["ssn"]) != (self.opc, self.ssn):
            raise ValueError("snapshot of another TCAP user")
        with self.lock:
            for d in snap["dialogues"]:
                self.apply(d)
            self.next_tid = max(self.next_tid, snap["next_tid"])

    # -- received -----------------------------------------------------------------------

    def on_message(self, m: Msu, slc: int, replayed: bool = False) -> None:
        """`replayed`: as isup.Isup.on_message; a Begin whose dialogue exists, or a
        Continue or End for none, is dropped without an answer."""
        if m.si == SI_SCCP:
            self._inbox.put((m, replayed))

    def _work(self) -> None:
        while (item := self._inbox.get()) is not None:
            with self.lock:
                self._handle(*item)

    def _handle(self, m: Msu, replayed: bool = False) -> None:
        try:
            called, _calling, data = decode_udt(m.sif)
            kind, body = decode_tcap(data)
        except ValueError as e:
            self.errors[str(e).split(":")[0]] += 1
            return
        if m.opc != self.dpc or called != self.ssn:
            self.errors["UDT for another point code or SSN"] += 1
            return
        self.counts[f"rx_{kind}"] += 1
        comps = body.get("components", [])
        ros = [c[1] for c in comps if c[0] == "basicROS"]
        invokes = [v["invokeId"][1] for k, v in ros if k == "invoke"]
        results = sum(1 for k, _ in ros if k == "returnResult")
        if replayed and (
                any(d.peer_tid == int.from_bytes(body["otid"], "big") for d in self.dialogues.values())
                if kind == "begin" else
                kind in ("continue", "end") and int.from_bytes(body["dtid"], "big") not in self.dialogues):
            self.counts["replayed, handled already"] += 1
            return
        if kind == "begin":
            d = Dialogue(self._new_tid(), "responder", ACTIVE,
                         peer_tid=int.from_bytes(body["otid"], "big"), t_begin=time.time())
            self.dialogues[d.tid] = d
            d.invokes_received += len(invokes)
            self._send(d.tid, "continue", {"otid": tid_bytes(d.tid), "dtid": body["otid"],
                                           "components": [result(i) for i in invokes]})
            self._changed(d, "begin")
            return
        if kind == "abort":
            d = self.dialogues.get(int.from_bytes(body["dtid"], "big"))
            if d:
                self._close(d, ABORTED, "abort")
            return
        if kind not in ("continue", "end"):
            self.errors[f"TCAP {kind} not handled"] += 1
            return
        d = self.dialogues.get(int.from_bytes(body["dtid"], "big"))
        if d is None:
            self.errors[f"{kind} for an unknown transaction"] += 1
            if kind == "continue":              # no Abort for an End (Q.774 3.2.2)
                self._send(0, "abort", {"dtid": body["otid"],
                                        "reason": ("p-abortCause", UNRECOGNIZED_TID)})
            return
        if kind == "end":
            d.results_received += results
            self._close(d, ENDED, "remote")
            return
        if d.state == INITIATED:
            d.state, d.peer_tid = ACTIVE, int.from_bytes(body["otid"], "big")
        d.results_received += results
        d.invokes_received += len(invokes)
        if invokes:
            self._send(d.tid, "continue", {"otid": tid_bytes(d.tid), "dtid": tid_bytes(d.peer_tid),
                                           "components": [result(i) for i in invokes]})
        self._changed(d, "continue")

    # -- under the lock -----------------------------------------------------------------

    def _new_tid(self) -> int:
        tid, self.next_tid = self.next_tid, (self.next_tid + 1) % (1 << 32) or 1
        return tid

    def _active(self, tid: int) -> Dialogue:
        d = self.dialogues.get(tid)
        if d is None or d.state != ACTIVE:
            raise ValueError(f"dialogue {tid} is {d.state if d else 'unknown'}, not active")
        return d

    def _send(self, tid: int, kind: str, body: dict) -> None:
        self.counts[f"tx_{kind}"] += 1
        if self.send_msu is None:
            self.errors["no linkset to send on"] += 1
            return
        udt = encode_udt(self.opc, self.ssn, self.dpc, self.peer_ssn, encode_tcap(kind, body))
        self.send_msu(SI_SCCP, tid & 0xF, udt)   # one SLS per dialogue: kept in order

    def _changed(self, d: Dialogue, event: str) -> None:
        if self.on_update:
            self.on_update(asdict(d))
        if self.on_event:
            self.on_event(event, d)

    def _close(self, d: Dialogue, state: str, by: str) -> None:
        d.state, d.closed_by, d.t_end = state, by, time.time()
        self.dialogues.pop(d.tid, None)
        self.closed.append(d)
        self._changed(d, state)
