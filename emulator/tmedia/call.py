"""One call through the unit: sippy's B2BUA call controller with the gateway's routes.

It exists to keep the per-call logic (route lookup, hunting over alternate routes, the
testbed's headers, counters, log lines and the gateway's call events) apart from the
stack's plumbing in sip_stack.py.

- `GatewayRouteLookup` fills the slot sippy's B2BUA keeps for an asynchronous per-call
  lookup (`global_config['_radius_client'].do_auth(..., res_cb)`, entered in state
  `CCStateWaitRoute`, handle kept in `auth_proc` and cancelled if the caller goes away):
  the route request runs on the gateway client's thread and its answer comes back on
  sippy's reactor through `ED2.callFromThread(rDone, result)`.
- `TbCallController` (a `sippy.b2bua.CallController`) refuses the call with the
  gateway's code in `rDone`, or hands sippy `Routing:host:port` results, and sippy's
  own `rDone` checks the A-leg is still trying, builds the `B2BRoute`s and places the
  B-leg (`placeOriginate`); a failed or silent B-leg moves on to the next route.
- In the dialog, sippy relays a re-INVITE whose SDP changed to the other leg and the
  far end's answer back (CCEventUpdate, then CCEventConnect), and answers one with the
  same SDP, and any OPTIONS, itself: a re-INVITE with a new SDP version is what shows a
  call still open end to end (harness/post_checks.py, scenarios/sipp/uac_reinvite.xml).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

from sippy.Core.EventDispatcher import ED2
import random

from sippy.b2bua import CallController, Rtp_proxy_session_default
from sippy.Rtp_proxy.Cmd.sequencer import Rtp_proxy_cmd_sequencer
from sippy.B2B.States import CCStateWaitRoute, CCStateARComplete, CCStateDead
from sippy.CCEvents import CCEventFail, CCEventConnect, CCEventDisconnect
from sippy.SipAddress import SipAddress
from sippy.SipConf import SipConf
from sippy.SipContact import SipContact
from sippy.SipGenericHF import SipGenericHF
from sippy.SipHeader import SipHeader
from sippy.SipURL import SipURL

from .gateway_client import GatewayClient, RouteResult

if TYPE_CHECKING:
    from .sip_stack import SipStack

# A failed B-leg moves on to the next route on no answer (408, or sippy's no-reply
# timer), on 5xx and on 480; any other final code is the callee's answer and is passed
# to the caller as it is.
HUNT_ON = frozenset([408, 480]) | frozenset(range(500, 600))
HUNTSTOP_SCODES = tuple(c for c in range(300, 700) if c not in HUNT_ON)


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
                                 lambda result: ED2.callFromThread(res_cb, result),
                                 gateways_fn=self._gateways)

    def _gateways(self) -> tuple:
        lease = self.lease_fn()
        return lease[1] if lease is not None else ()


class TbRtpSession(Rtp_proxy_session_default):
    """sippy's media session, with the relay picked among those whose voice path is up
    (sippy picks at random among the online ones: the load sharing when both are up)."""

    def __init__(self, global_config, *args, **kwargs):
        super().__init__(global_config, *args, **kwargs)
        usable = [c for c in global_config['_rtp_proxy_clients']
                  if c.online and getattr(c, 'path_up', True)]
        if usable and self.rtp_proxy_client not in usable:
            c = random.choice(usable)
            self.rtp_proxy_client, self.notify_socket = c, c.notify_socket
            self.rtpp_seq = Rtp_proxy_cmd_sequencer(c)


class TbCallController(CallController):
    rtpps_cls = TbRtpSession

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
        self.path = None          # the voice path of its media (when the unit has paths)
        self.cli = self.cld = None   # sippy sets them from the INVITE (CCEventTry)
        stack.counters.call_started()

    @property
    def call_id(self) -> str:
        return str(self.cId) if self.cId is not None else "?"

    def recvEvent(self, event, ua):
        if ua is not self.uaA:
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
        rtpps = self.rtp_proxy_session
        self.path = getattr(rtpps.rtp_proxy_client, 'path', None) if rtpps is not None else None
        self.stack.counters.call_answered(self.path)
        rr = self.route_result
        self.stack.log(f"call {self.call_id} answered cli={self.cli} cld={self.cld} "
                       f"gateway={rr.gateway if rr else None} route={self.hostport}"
                       + (f" voice path {self.path}" if self.path is not None else ""))
        if rr is not None and rr.ok:
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
        elif not result and origin == 'caller':
            self.stack.log(f"call {self.call_id} cancelled by caller cli={self.cli} cld={self.cld} "
                           f"gateway={rr.gateway if rr else None}")
        else:
            self.stack.log(f"call {self.call_id} failed code={result or '-'} by {origin or 'unit'} "
                           f"cli={self.cli} cld={self.cld} gateway={rr.gateway if rr else None}"
                           + (f" reason={rr.reason!r}" if rr is not None and not rr.ok else ""))
        if rr is not None and rr.ok:   # the gateway that routed the call keeps its record
            self.stack.gateways.call_event("ended", self.call_id, rr.gateway, rr.gateway_addr)


def _reason(result: RouteResult) -> str:
    """Reason phrase for a refused call: the standard text, then the gateway's words
    (printable characters only: they go into the status line)."""
    text = {503: 'Service Unavailable', 404: 'Not Found', 500: 'Server Internal Error'}.get(result.code, 'Refused')
    why = ''.join(c for c in str(result.reason) if c.isprintable())[:120]
    return f"{text} ({why})" if why else text
