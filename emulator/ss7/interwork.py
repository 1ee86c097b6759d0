"""SIP-ISUP interworking for the calls on one unit's own ISUP trunk group.

Each unit's SS7 node runs one `Interworking`: a SIP user agent (sippy's UA, on the unit's
VoIP address, the SS7 configuration's `sip_port`, 5070) that is the SIP side of every call on the unit's
own circuits. Its SIP peer is the unit's own SIP stack, so both directions go through the
gateway's routes:

- SIP to ISUP: a gateway route to the unit's ISUP trunk group (the gateway resolves the
  group to this address) brings the unit's B-leg INVITE here; it becomes an IAM on one of
  the group's circuits. ACM gives 180, ANM gives 200, the caller's BYE (or CANCEL) gives
  REL; the far end's REL gives BYE, or before the answer the final response RFC 3398 maps
  its cause to (causes.py). No free circuit, or the unit's SS7 stack disabled: 503.
- ISUP to SIP: the far end's IAM on one of the group's circuits becomes an INVITE to the
  unit's SIP stack (the called number as the Request-URI user), which routes it like any
  call (to sipp-uas in the testbed). The ACM went at once (numbers en bloc, isup.py); 200
  gives ANM, a failure gives REL with the mapped cause, BYE gives REL, REL gives BYE (or
  CANCEL while ringing).

Why the calls of a trunk group live on its own unit: the seed gives trunks no HA, so a
unit's crash ends its own circuits' calls anyway (the active ISUP releases them, cause 41),
and every other call's SIP side is on a unit that survives. ISUP itself runs on the active
node, maybe the other unit's: `isup_cmd` takes this side's orders there ({"cmd": "place" |
"answer" | "release", ...}), and the active sends each ISUP event of this group's calls
here (`on_isup`). At a takeover the calls here go on: the new active has their circuit
states, and the orders now go to it.

There is no TDM media: a circuit is state only. The SDP offered or answered here names
port 9 (discard) on the unit's address; the unit's media relay sends there and nothing
listens.

Threads: sippy runs on its reactor (ED2, `run()` on the caller's thread); ISUP events come
from the node's threads and are handed to the reactor (ED2.callFromThread).
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Callable, Optional

os.environ.setdefault("SIPLOG_BEND", "stderr" if os.environ.get("TMEDIA_SIP_TRACE") else "none")

from sippy.CCEvents import (CCEventConnect, CCEventDisconnect, CCEventFail,  # noqa: E402
                            CCEventRing, CCEventTry)
from sippy.Core.EventDispatcher import ED2                                    # noqa: E402
from sippy.MsgBody import MsgBody                                             # noqa: E402
from sippy.SipConf import SipConf                                             # noqa: E402
from sippy.SipLogger import SipLogger                                         # noqa: E402
from sippy.SipTransactionManager import SipTransactionManager                 # noqa: E402
from sippy.UA import UA                                                       # noqa: E402

from ..tmedia.call import named_header                                        # noqa: E402
from .causes import isup_cause, sip_response                                  # noqa: E402
from .isup import NORMAL_CLEARING, TEMPORARY_FAILURE                                             # noqa: E402

SDP = ("v=0\r\no=- {v} {v} IN IP4 {ip}\r\ns=ISUP circuit\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
       "m=audio 9 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
NO_CIRCUIT = (503, "Service Unavailable (no ISUP circuit)")
STACK_DISABLED = (503, "Service Unavailable (SS7 stack disabled)")   # the unit's group refusing
NO_NODE = (503, "Service Unavailable (no active SS7 node)")


@dataclass
class IwCall:
    """One call's two sides: the SIP dialog (`ua`) and the ISUP circuit."""
    direction: str                      # "sip-isup" or "isup-sip"
    ua: UA
    ref: str = ""                       # the name ISUP knows an outgoing call by
    cic: Optional[int] = None
    called: str = ""
    answered: bool = False
    sip_done: bool = False              # the SIP side ended (BYE, CANCEL, failure sent)
    isup_done: bool = False             # REL sent or received
    release: Optional[int] = None       # the cause of a release asked before the IAM left


class Interworking:
    def __init__(self, unit: str, sip_ip: str, sip_port: int, stack: tuple[str, int],
                 isup_cmd: Callable[[dict], None], log: Callable[[str], None]):
        self.unit, self.sip_ip, self.sip_port, self.stack = unit, sip_ip, sip_port, stack
        self.isup_cmd, self.log = isup_cmd, log
        self.by_cic: dict[int, IwCall] = {}
        self.by_ref: dict[str, IwCall] = {}
        self.by_ua: dict[int, IwCall] = {}
        self.counts = {"sip_isup": 0, "isup_sip": 0, "answered": 0, "failed": 0}
        self._refs = itertools.count(1)
        self._sdp = itertools.count(1)
        self.gc: dict = {}

    # -- life cycle (on the thread that runs the reactor) ----------------------------------

    def start(self) -> "Interworking":
        SipConf.my_address, SipConf.my_port = self.sip_ip, self.sip_port
        SipConf.my_uaname = f"ISUP interworking {self.unit}"
        self.gc = {"_sip_address": self.sip_ip, "_sip_port": self.sip_port,
                   "_sip_logger": SipLogger("interwork")}
        self.gc["_sip_tm"] = SipTransactionManager(self.gc, self._request)
        return self

    def run(self) -> None:
        ED2.loop()

    @staticmethod
    def stop_from_thread() -> None:
        ED2.callFromThread(ED2.breakLoop)

    def status(self) -> dict:
        return {"address": f"{self.sip_ip}:{self.sip_port}", "calls": len(self.by_ua),
                **self.counts}

    def _body(self) -> MsgBody:
        v = next(self._sdp)
        return MsgBody(SDP.format(v=v, ip=self.sip_ip))

    def _new(self, direction: str, ua: UA) -> IwCall:
        call = IwCall(direction, ua)
        self.by_ua[id(ua)] = call
        return call

    def _forget(self, call: IwCall) -> None:
        if call.sip_done and call.isup_done:
            self.by_ua.pop(id(call.ua), None)
            self.by_ref.pop(call.ref, None)
            if call.cic is not None and self.by_cic.get(call.cic) is call:
                del self.by_cic[call.cic]

    # -- SIP (on the reactor) ---------------------------------------------------------------

    def _request(self, req, sip_t):
        if req.getHFBody("to").getTag() is not None:
            return (req.genResponse(481, "Call Leg/Transaction Does Not Exist"), None, None)
        method = req.getMethod()
        if method == "INVITE":
            call = self._new("sip-isup", UA(self.gc, self._sip_event, dead_cbs=(self._dead,)))
            return call.ua.recvRequest(req, sip_t)
        if method == "OPTIONS":
            return (req.genResponse(200, "OK"), None, None)
        return (req.genResponse(501, "Not Implemented"), None, None)

    def _dead(self, ua, *_):
        call = self.by_ua.get(id(ua))
        if call is not None:
            call.sip_done = True
            self._forget(call)

    def _sip_event(self, event, ua) -> None:
        call = self.by_ua.get(id(ua))
        if call is None:
            return
        if isinstance(event, CCEventTry):                      # the unit's B-leg INVITE
            _cid, cli, cld, _body, _auth, _name = event.getData()
            call.ref, call.called = f"{self.unit}:{next(self._refs)}", str(cld or "")
            self.by_ref[call.ref] = call
            self.counts["sip_isup"] += 1
            self.isup_cmd({"cmd": "place", "group": self.unit, "called": call.called,
                           "ref": call.ref})
        elif isinstance(event, CCEventRing):
            pass                                               # the ACM went with the IAM
        elif isinstance(event, CCEventConnect):                # the callee answered
            if call.cic is not None and not call.isup_done:
                call.answered = True
                self.counts["answered"] += 1
                self.isup_cmd({"cmd": "answer", "cic": call.cic})
        elif isinstance(event, (CCEventFail, CCEventDisconnect)):
            call.sip_done = True
            if isinstance(event, CCEventFail):
                code = event.getData()[0]
                cause = isup_cause(code) if 300 <= code < 700 else NORMAL_CLEARING
                self.counts["failed"] += 1
            else:
                cause = NORMAL_CLEARING
            self._release(call, cause)

    def _release(self, call: IwCall, cause: int) -> None:
        if call.isup_done:
            self._forget(call)
            return
        if call.cic is None:                 # the IAM is on its way: released once placed
            call.release = cause
            return
        call.isup_done = True
        self.isup_cmd({"cmd": "release", "cic": call.cic, "cause": cause})
        self._forget(call)

    # -- ISUP (from the node's threads) ----------------------------------------------------

    def on_isup(self, ev: str, d: dict) -> None:
        ED2.callFromThread(self._on_isup, ev, d)

    def _on_isup(self, ev: str, d: dict) -> None:
        if d.get("direction") == "in":
            self._incoming(ev, d)
            return
        call = self.by_ref.get(d.get("ref") or "")
        if call is None:
            return
        if ev == "iam":                      # placed (again after a glare) on this circuit
            call.cic = d["cic"]
            self.by_cic[call.cic] = call
            if call.release is not None:
                self._release(call, call.release)
        elif ev == "failed":                 # no circuit, or the group refusing
            call.isup_done = True
            self.counts["failed"] += 1
            self._sip_end(call, {"refusing": STACK_DISABLED, "no active SS7 node": NO_NODE}
                          .get(d.get("why"), NO_CIRCUIT))
        elif ev == "acm":
            if not call.sip_done:
                call.ua.recvEvent(CCEventRing((180, "Ringing", None)))
        elif ev == "anm":
            if not call.sip_done:
                call.answered = True
                self.counts["answered"] += 1
                call.ua.recvEvent(CCEventConnect((200, "OK", self._body())))
        elif ev in ("rel", "end"):
            if d.get("outcome") == "glare":  # a re-attempt on another circuit follows
                if call.cic is not None and self.by_cic.get(call.cic) is call:
                    del self.by_cic[call.cic]
                call.cic = None
                return
            call.isup_done = True
            if d.get("released_by") == "remote" or ev == "rel":
                self._sip_end(call, sip_response(d.get("cause") or NORMAL_CLEARING))
            self._forget(call)

    def _incoming(self, ev: str, d: dict) -> None:
        cic = d["cic"]
        call = self.by_cic.get(cic)
        if ev == "iam":                      # the far end's call: INVITE to the unit's stack
            if call is not None:             # an earlier call's end never came: it is over
                call.isup_done = True
                self._sip_end(call, sip_response(TEMPORARY_FAILURE))
                self.by_cic.pop(cic, None)
            ua = UA(self.gc, self._sip_event, nh_address=self.stack, dead_cbs=(self._dead,))
            call = self._new("isup-sip", ua)
            call.cic, call.called = cic, d.get("called") or ""
            self.by_cic[cic] = call
            self.counts["isup_sip"] += 1
            try_ = CCEventTry((None, f"isup-{self.unit}-{cic}", call.called, self._body(),
                               None, None))
            # the testbed's call name, passed on by the unit to the callee: the harness
            # finds the ISUP call's SIP leg by its circuit and IAM time
            try_.extra_headers = (named_header("X-Tb-Call", f"isup:{cic}:{d.get('t_iam', 0):.3f}"),)
            ua.recvEvent(try_)
            return
        if call is None:
            return
        if ev in ("rel", "end") and not call.isup_done:
            call.isup_done = True
            self._sip_end(call, sip_response(d.get("cause") or NORMAL_CLEARING))
            self._forget(call)

    def _sip_end(self, call: IwCall, response: tuple[int, str]) -> None:
        """End the SIP side: BYE once answered (or CANCEL while the INVITE we sent is
        pending), else the final response."""
        if call.sip_done:
            self._forget(call)
            return
        call.sip_done = True
        if call.direction == "sip-isup" and not call.answered:
            call.ua.recvEvent(CCEventFail(response))
        else:
            call.ua.recvEvent(CCEventDisconnect())
        self._forget(call)
