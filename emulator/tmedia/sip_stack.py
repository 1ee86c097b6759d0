"""The unit's SIP stack: sippy 2.5.0's B2BUA with routes from the leasing host's gateway and
RTP relayed through the unit by rtp.io (rtpproxy embedded in this process).

It exists so SIPp calls through a unit behave as through a real TMedia SIP stack: every
INVITE waits for a route from the gateway, the B-leg tries the routes in order, the
caller's 200 OK names the gateway (`X-Tb-Gateway`), `X-Tb-Call` passes to the B-leg
unchanged, media goes through the unit's own address on both legs, and the gateway hears
`answered` / `ended` for each routed call.

How it hooks into sippy (its own reactor, `ED2`; every sippy call runs on it):

- `TbCallController` subclasses `sippy.b2bua.CallController`. sippy's B2BUA has one slot
  for an asynchronous per-call lookup: with `auth_enable` it puts the call in
  `CCStateWaitRoute`, calls `global_config['_radius_client'].do_auth(..., res_cb=rDone)`,
  keeps the returned handle in `auth_proc` and cancels it if the caller goes away.
  `GatewayRouteLookup` fills that slot: it runs the route request on the gateway
  client's thread and brings the answer back with `ED2.callFromThread(rDone, result)`.
- `TbCallController.rDone` refuses the call with the gateway's code (503 when there is no
  lease or no answer), or turns the routes into sippy's `Routing:host:port` results and
  hands over to `CallController.rDone`, which checks the A-leg is still trying, builds
  the `B2BRoute`s and starts the B-leg with `placeOriginate`; a failed or unanswered B-leg
  moves on to the next route (CallController.recvEvent) unless the code is a hunt-stop.
- Media: `Rtp_proxy_client(spath='rtp.io:-l;<sip ip>;...')` starts rtpproxy inside the
  process; CallController makes one `Rtp_proxy_session` per call, which rewrites the SDP
  of both legs to the unit's address and ports. rtpproxy's global counters ("Ib"
  command, polled by sippy's client every second) are the unit's RTP counters.
"""
from __future__ import annotations

import ipaddress
import os
from typing import Callable, Optional

# sippy's SIP message log goes to stderr by default (every message); the unit logs one
# line per call instead unless TMEDIA_SIP_TRACE asks for the messages.
os.environ.setdefault("SIPLOG_BEND", "stderr" if os.environ.get("TMEDIA_SIP_TRACE") else "none")

from sippy.Core.EventDispatcher import ED2                       # noqa: E402
from sippy.Time.Timeout import Timeout                            # noqa: E402
from sippy.b2bua import CallController                            # noqa: E402
from sippy.B2B.States import (CCStateIdle, CCStateWaitRoute,      # noqa: E402
                              CCStateARComplete, CCStateDead)
from sippy.CCEvents import (CCEventTry, CCEventFail,              # noqa: E402
                            CCEventConnect, CCEventDisconnect)
from sippy.MyConfigParser import MyConfigParser                   # noqa: E402
from sippy.Rtp_proxy.client import Rtp_proxy_client               # noqa: E402
from sippy.SipAddress import SipAddress                           # noqa: E402
from sippy.SipConf import SipConf                                 # noqa: E402
from sippy.SipContact import SipContact                           # noqa: E402
from sippy.SipGenericHF import SipGenericHF                       # noqa: E402
from sippy.SipHeader import SipHeader                             # noqa: E402
from sippy.SipLogger import SipLogger                             # noqa: E402
from sippy.SipTransactionManager import SipTransactionManager     # noqa: E402
from sippy.SipURL import SipURL                                   # noqa: E402
from sippy.Udp_server import Udp_server, Udp_server_opts          # noqa: E402
from sippy.UaStateDead import UaStateDead                         # noqa: E402
from sippy.UaStateDisconnected import UaStateDisconnected         # noqa: E402
from sippy.UaStateFailed import UaStateFailed                     # noqa: E402

from .counters import Counters                                    # noqa: E402
from .gateway_client import GatewayClient, RouteResult            # noqa: E402

# A failed B-leg moves on to the next route on no answer (408, or sippy's no-reply
# timer), on 5xx and on 480; any other final code is the callee's answer and is passed
# to the caller as it is.
HUNT_ON = frozenset([408, 480]) | frozenset(range(500, 600))
HUNTSTOP_SCODES = tuple(c for c in range(300, 700) if c not in HUNT_ON)


class OneWorkerUdpOpts(Udp_server_opts):
    # DESIGN.md defect 2: with sippy's default 3 sender threads a 180 and a 200 sent back
    # to back can leave out of order; one worker gave 0 failures in 3000 calls.
    nworkers = 1


class TbSipTransactionManager(SipTransactionManager):
    model_udp_server = (Udp_server, OneWorkerUdpOpts)

    def newTransaction(self, msg, *args, **kwargs):
        # DESIGN.md defect 1: a peer's Contact with `transport=UDP` (upper case, as SIPp's
        # built-in uas sends) becomes the target of every in-dialog request, and sippy
        # compares the transport case-sensitively ("newTransaction() to unsupported
        # transport: UDP"), so the BYE never leaves. Transport names are case-insensitive
        # (RFC 3261 19.1.1): normalise before sippy looks.
        target = msg.getTarget()
        if target is not None:
            address, transport = target
            if isinstance(transport, str) and transport != transport.lower():
                msg.setTarget((address, transport.lower()))
        return super().newTransaction(msg, *args, **kwargs)


# Headers the testbed adds or passes, spelled as the contract spells them: sippy keeps
# only the lower-cased name of a header it does not know and writes it back as
# "X-tb-call", and SIPp matches header names case-sensitively.
PASS_HEADERS = {'x-tb-call': 'X-Tb-Call'}
GATEWAY_HEADER = 'X-Tb-Gateway'


class NamedHF(SipGenericHF):
    """A generic header body that keeps its header's spelling."""

    def __init__(self, body, name):
        super().__init__(body, name)
        self.can_name = name

    def getCopy(self):
        return self.__class__(self.body, self.can_name)

    def getCanName(self, name, compact=False):
        return self.can_name


def named_header(name: str, value: str) -> SipHeader:
    return SipHeader(name=name, body=NamedHF(value, name))


class GatewayRouteLookup:
    """Fills sippy's `_radius_client` slot: `do_auth` starts an asynchronous route request
    and returns a handle with `cancel()`; the result comes back on the reactor."""

    def __init__(self, client: GatewayClient, lease_fn: Callable[[], Optional[tuple]]):
        self.client, self.lease_fn = client, lease_fn

    def do_auth(self, username, caller, callee, sip_cid, remote_ip, res_cb, *args, **kwargs):
        lease = self.lease_fn()
        gateways = lease[1] if lease is not None else ()
        return self.client.route(gateways, str(sip_cid), caller, callee,
                                 lambda result: ED2.callFromThread(res_cb, result))


class TbCallController(CallController):
    def __init__(self, stack: "SipStack", *args):
        super().__init__(*args)
        # sippy's default Contact is `Anonymous <sip:ip:port>`; SIPp's [next_url] copies
        # the display name into the ACK/BYE request line, which sippy then cannot parse.
        self.uaA.lContact = SipContact(address=SipAddress(url=SipURL(
            host=SipConf.my_address, port=SipConf.my_port, transport=SipConf.my_transport)))
        self.stack = stack
        self.route_result: Optional[RouteResult] = None
        self.hostport = None
        self.answered = False
        self.finished = False
        stack.counters.call_started()

    @property
    def call_id(self) -> str:
        return str(self.cId) if self.cId is not None else "?"

    def recvEvent(self, event, ua):
        if ua is self.uaA:
            if self.state == CCStateIdle and isinstance(event, CCEventTry) and not self.stack.media_ready():
                self.cId = event.getData()[0]
                self.uaA.recvEvent(CCEventFail((503, 'Service Unavailable (media relay not ready)'),
                                               rtime=event.rtime))
                self.state = CCStateDead
                return
        else:
            a_trying = isinstance(self.uaA.state, (self.uaA.UasStateTrying, self.uaA.UasStateRinging))
            if isinstance(event, CCEventConnect) and self.route_result is not None:
                hdr = named_header(GATEWAY_HEADER, self.route_result.gateway)
                event.extra_headers = tuple(event.extra_headers or ()) + (hdr,)
            elif isinstance(event, CCEventDisconnect) and self.state == CCStateARComplete \
                    and a_trying and len(self.routes) == 0:
                # the last route never answered (sippy's no-reply timer): the caller gets
                # 503 rather than sippy's "500 Disconnected"
                event = CCEventFail((503, 'Service Unavailable (no answer from route)'), rtime=event.rtime)
        super().recvEvent(event, ua)

    def rDone(self, result):
        """The gateway's answer, on the reactor (see GatewayRouteLookup)."""
        self.auth_proc = None
        if self.state != CCStateWaitRoute:
            return
        if not isinstance(result, RouteResult):   # not ours: let sippy judge it
            return super().rDone(result)
        self.route_result = result
        if not result.ok:
            if isinstance(self.uaA.state, self.uaA.UasStateTrying):
                self.uaA.recvEvent(CCEventFail((result.code, _reason(result))))
            self.state = CCStateDead
            return
        nr = self.stack.no_reply_s
        routing = [('h323-ivr-in', f'Routing:{host}:{port};nr_expires={nr}')
                   for host, port in result.routes]
        try:
            super().rDone((routing, 0))   # checks the A-leg is still trying, places the B-leg
        except Exception as exc:
            self.stack.log(f"call {self.call_id} route setup failed: {exc!r}")
            if isinstance(self.uaA.state, (self.uaA.UasStateTrying, self.uaA.UasStateRinging)):
                self.uaA.recvEvent(CCEventFail((500, 'Internal Server Error (route setup)')))
            self.state = CCStateDead

    def placeOriginate(self, oroute):
        oroute.params['huntstop_scodes'] = HUNTSTOP_SCODES
        self.hostport = oroute.hostport
        super().placeOriginate(oroute)

    def aConn(self, ua, rtime, origin):
        super().aConn(ua, rtime, origin)
        self.answered = True
        self.stack.counters.call_answered()
        rr = self.route_result
        self.stack.log(f"call {self.call_id} answered cli={self.cli} cld={self.cld} "
                       f"gateway={rr.gateway if rr else None} route={self.hostport}")
        if rr is not None and rr.gateway_addr is not None:
            self.stack.gateways.call_event("answered", self.call_id, rr.gateway, rr.gateway_addr)

    def aDisc(self, ua, rtime, origin, result=0):
        super().aDisc(ua, rtime, origin, result)
        if self.finished:
            return
        self.finished = True
        self.stack.counters.call_ended(self.answered)
        rr = self.route_result
        if self.answered:
            self.stack.log(f"call {self.call_id} ended by {origin or 'unit'} gateway={rr.gateway if rr else None}")
        else:
            self.stack.log(f"call {self.call_id} failed code={result or '-'} by {origin or 'unit'} "
                           f"cli={self.cli} cld={self.cld} gateway={rr.gateway if rr else None}"
                           + (f" reason={rr.reason!r}" if rr is not None and not rr.ok else ""))
        if rr is not None and rr.gateway_addr is not None:
            self.stack.gateways.call_event("ended", self.call_id, rr.gateway, rr.gateway_addr)


def _reason(result: RouteResult) -> str:
    text = {503: 'Service Unavailable', 404: 'Not Found', 500: 'Server Internal Error'}.get(result.code, 'Refused')
    return f"{text} ({result.reason})" if result.reason else text


class TbCallMap:
    """What sippy's CallMap does for the B2BUA, minus its signal handlers and timers:
    new INVITEs get a TbCallController, everything else a stateless answer."""

    debug_mode = False

    def __init__(self, stack: "SipStack"):
        self.stack = stack
        self.ccmap = []
        self.stopping = False

    def recvRequest(self, req, sip_t):
        try:
            to_tag = req.getHFBody('to').getTag()
            method = req.getMethod()
        except Exception:
            return (None, None, None)   # unparseable: drop, as sippy's CallMap does
        if to_tag is not None:
            return (req.genResponse(481, 'Call Leg/Transaction Does Not Exist'), None, None)
        if method == 'INVITE':
            if self.stopping:
                return (req.genResponse(503, 'Service Unavailable (stopping)'), None, None)
            gc = self.stack.global_config
            via = req.getHFBody('via', 1) if req.countHFs('via') > 1 else req.getHFBody('via', 0)
            source, _transport = req.getSource(ver=2)
            remote_ip = via.getTAddr()[0]
            pass_headers = [named_header(PASS_HEADERS[name], str(h.getBody()))
                            for name in gc['_pass_headers'] for h in req.getHFs(name)]
            cc = TbCallController(self.stack, remote_ip, source, source[0], req.getRURI(), gc, pass_headers)
            rval = cc.uaA.recvRequest(req, sip_t)
            self.ccmap.append(cc)
            return rval
        if method in ('OPTIONS', 'NOTIFY', 'PING'):
            return (req.genResponse(200, 'OK'), None, None)
        return (req.genResponse(501, 'Not Implemented'), None, None)

    def disc_all(self):
        for cc in tuple(self.ccmap):
            try:
                cc.disconnect()
            except Exception as exc:   # one broken dialog must not keep the others up
                self.stack.log(f"call {cc.call_id}: hang-up failed: {exc!r}")

    def live_calls(self) -> list:
        """Calls with a leg not yet hung up (sippy keeps ended calls in ccmap for a while,
        until both legs' dialogs are dead)."""
        def done(ua):
            return ua is None or isinstance(ua.state, (UaStateDisconnected, UaStateFailed, UaStateDead))
        return [cc for cc in self.ccmap if not (done(cc.uaA) and done(cc.uaO))]


class SipStack:
    def __init__(self, unit: str, sip_ip: str, sip_port: int, counters: Counters,
                 lease_fn: Callable[[], Optional[tuple]], gateways: GatewayClient,
                 log: Callable[[str], None] = print, rtp_ports: Optional[tuple] = None,
                 no_reply_s: int = 2, rtp_loglevel: str = "err"):
        ipaddress.IPv4Address(sip_ip)   # sippy needs a concrete address for Via/Contact/SDP
        if sip_ip == "0.0.0.0":
            raise ValueError("the SIP address must be a concrete IPv4 address, not 0.0.0.0")
        self.unit, self.sip_ip, self.sip_port = unit, sip_ip, int(sip_port)
        self.counters, self.lease_fn, self.gateways, self.log = counters, lease_fn, gateways, log
        self.rtp_ports, self.no_reply_s, self.rtp_loglevel = rtp_ports, int(no_reply_s), rtp_loglevel
        self.global_config = None
        self.rtpc = None
        self.cmap = None
        self.stm = None
        self._stop_deadline = None
        self._stop_timer = None

    # --- media --------------------------------------------------------------------------
    def media_ready(self) -> bool:
        return self.rtpc is not None and bool(self.rtpc.online)

    def rtp_stats(self) -> dict:
        c = self.rtpc
        if c is None or c.ptransmitted is None:
            return {}
        return {"packets_transmitted": c.ptransmitted, "packets_received": c.preceived,
                "active_sessions": c.active_sessions}

    # --- lifecycle (start and run on the main thread) ------------------------------------
    def start(self) -> "SipStack":
        """Bind SIP and start the media relay; raises OSError on an unusable address/port."""
        SipConf.my_uaname = f'TMedia {self.unit}'
        gc = MyConfigParser()
        gc['_sip_address'] = self.sip_ip
        gc['_sip_port'] = self.sip_port
        gc['_sip_logger'] = SipLogger('tmedia')
        gc['_uaname'] = SipConf.my_uaname
        gc['keepalive_ans'] = 0
        gc['keepalive_orig'] = 0
        gc['auth_enable'] = True       # = "ask the lookup in _radius_client for routes"
        gc['digest_auth'] = False
        gc['acct_enable'] = False
        gc['start_acct_enable'] = False
        gc['_pass_headers'] = list(PASS_HEADERS)
        gc['_radius_client'] = GatewayRouteLookup(self.gateways, self.lease_fn)
        self.global_config = gc
        self.cmap = TbCallMap(self)
        gc['_cmap'] = self.cmap
        args = ['-l', self.sip_ip, '-F', '-d', self.rtp_loglevel]
        if self.rtp_ports is not None:
            args += ['-m', str(self.rtp_ports[0]), '-M', str(self.rtp_ports[1])]
        self.rtpc = Rtp_proxy_client(gc, spath='rtp.io:' + ';'.join(args))
        gc['_rtp_proxy_clients'] = [self.rtpc]
        self.stm = TbSipTransactionManager(gc, self.cmap.recvRequest)
        gc['_sip_tm'] = self.stm
        self.counters.rtp_stats = self.rtp_stats
        return self

    def run(self) -> None:
        """Run sippy's reactor until stop() has finished."""
        ED2.loop()

    def stop(self, grace_s: float = 2.0) -> None:
        """On the reactor: refuse new calls, hang up the ones in progress (BYE/CANCEL to both
        legs) and leave the loop when they are gone or after grace_s. A second stop
        request leaves the loop at once."""
        from sippy.Time.MonoTime import MonoTime
        if self._stop_deadline is not None:
            ED2.breakLoop()
            return
        self._stop_deadline = MonoTime().getOffsetCopy(grace_s)
        self._stop_timer = Timeout(self._check_stopped, 0.05, -1)
        self.cmap.stopping = True
        self.log(f"stopping: hanging up {len(self.cmap.live_calls())} call(s)")
        self.cmap.disc_all()

    def _check_stopped(self):
        from sippy.Time.MonoTime import MonoTime
        try:
            done = not self.cmap.live_calls()
        except Exception:
            done = True
        if done or MonoTime() > self._stop_deadline:
            self._stop_timer.cancel()
            ED2.breakLoop()

    def stop_from_thread(self) -> None:
        ED2.callFromThread(self.stop)

    def shutdown(self) -> None:
        """After run() returned: close the SIP sockets and the media relay."""
        if self.stm is not None:
            try:
                self.stm.l4r.shutdown()
            except Exception:
                pass
        if self.rtpc is not None:
            try:
                self.rtpc.shutdown()
            except Exception:
                pass
