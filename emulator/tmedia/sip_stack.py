"""The unit's SIP stack: sippy 2.5.0's B2BUA with routes from the leasing host's gateway and
RTP relayed through the unit by rtp.io (rtpproxy embedded in this process).

It exists so SIPp calls through a unit behave as through a real TMedia SIP stack: every
INVITE waits for a route from the gateway, the B-leg tries the routes in order, the
caller's 200 OK names the gateway (`X-Tb-Gateway`), `X-Tb-Call` passes to the B-leg
unchanged, media goes through the unit's own address on both legs, and the gateway hears
`answered` / `ended` for each routed call.

This module is the plumbing (the per-call logic is in call.py), all on sippy's own
reactor (`ED2`, run on the main thread; every sippy call must run on it):

- SIP: one UDP socket on the unit's VoIP address, sippy's transaction manager with one
  sender thread (sippy 2.5 sends a 180 and a 200 out of order with 3) and upper-case `transport=UDP` targets normalised
  (sippy fails every in-dialog request to such a peer); new INVITEs get a `call.TbCallController`, with `auth_enable` set so that
  sippy asks `GatewayRouteLookup` (in its `_radius_client` slot) for routes.
- Media: `Rtp_proxy_client(spath='rtp.io:-l;<sip ip>;...')` starts rtpproxy inside the
  process; CallController makes one `Rtp_proxy_session` per call, which rewrites the SDP
  of both legs to the unit's address and ports. rtpproxy's global counters ("Ib"
  command, polled by sippy's client every second) are the unit's RTP counters, and its
  acct_csv module (loaded by default) appends one line per call's media stream to
  rtpproxy_acct.csv in the working directory (unit.py makes that TMEDIA_STATE_DIR).
"""
from __future__ import annotations

import ipaddress
import os
import re
import threading
import time
from typing import Callable, Optional

# sippy's SIP message log goes to stderr by default (every message); the unit logs one
# line per call instead unless TMEDIA_SIP_TRACE asks for the messages.
os.environ.setdefault("SIPLOG_BEND", "stderr" if os.environ.get("TMEDIA_SIP_TRACE") else "none")

from sippy.Core.EventDispatcher import ED2                       # noqa: E402
from sippy.MyConfigParser import MyConfigParser                   # noqa: E402
from sippy.Rtp_proxy.client import Rtp_proxy_client               # noqa: E402
from sippy.SipConf import SipConf                                 # noqa: E402
from sippy.SipHeader import SipHeader                             # noqa: E402
from sippy.SipLogger import SipLogger                             # noqa: E402
from sippy.SipTransactionManager import SipTransactionManager     # noqa: E402
from sippy.Time.MonoTime import MonoTime                          # noqa: E402
from sippy.Time.Timeout import Timeout, TimeoutInact              # noqa: E402
from sippy.Udp_server import Udp_server, Udp_server_opts          # noqa: E402
from sippy.Network_server import Remote_address                   # noqa: E402
from sippy.UaStateDead import UaStateDead                         # noqa: E402
from sippy.UaStateDisconnected import UaStateDisconnected         # noqa: E402
from sippy.UaStateFailed import UaStateFailed                     # noqa: E402

from .call import PASS_HEADERS, GatewayRouteLookup, TbCallController, named_header  # noqa: E402
from .overload import (RETRY_AFTER_S, Admission, Decisions, ReactorBeat, SourceShare,  # noqa: E402
                       fast_busy, is_shed_ack, new_invite_call_id)  # noqa: E402
from .voice_paths import PathMonitor                               # noqa: E402
from .sip_checks import ALLOW, datagram, refusal                   # noqa: E402
from .counters import Counters                                    # noqa: E402
from .gateway_client import GatewayClient                         # noqa: E402


class PinnedRtpClient(Rtp_proxy_client):
    """An rtp.io relay that always uses its own `-l` address. sippy asks an rtpproxy that
    can do it to pick each session's local address by a route lookup towards the peer
    (the `R` option): from a virtual port's relay that is the bond's address, which
    would take the media off its voice path."""

    @property
    def sbind_supported(self):
        return False

    @sbind_supported.setter
    def sbind_supported(self, value):
        pass

    # sippy takes the relay offline at the first heartbeat ("Ib") left unanswered in
    # time, and a unit with no relay online refuses new calls: on a busy machine one late
    # answer of the in-process relay refused calls for a second. Offline after
    # MISSED_HEARTBEATS in a row, as a link monitor would.
    MISSED_HEARTBEATS = 3
    _missed = 0

    def heartbeat_reply(self, stats, ex=None):
        if stats is None and self.online and self._missed + 1 < self.MISSED_HEARTBEATS:
            self._missed += 1
            to = TimeoutInact(self.heartbeat, self.hrtb_ival)
            to.go()
            return
        self._missed = 0
        super().heartbeat_reply(stats, ex)


class OneWorkerUdpOpts(Udp_server_opts):
    # sippy 2.5 defect: with sippy's default 3 sender threads a 180 and a 200 sent back
    # to back can leave out of order; one worker gave 0 failures in 3000 calls.
    nworkers = 1


# Bad input (issue 4): sippy reads at most 8192 bytes of a datagram (Udp_server), so a
# datagram that fills the read may have been cut: it is dropped unparsed (logged). A
# request with a duplicated single-valued header or a bad Content-Length gets a 400.
MAX_SIP_BYTES = 8191
SINGLE_HEADERS = ('to', 'from', 'call-id', 'cseq', 'max-forwards')
MARK = 'X-Tb-Malformed'
_CL = re.compile(r'^(content-length|l)[ \t]*:[ \t]*(.*)$', re.I)


def mark_bad_content_length(data: str) -> str:
    """sippy keeps only the last Content-Length and takes a negative one as it is: a
    request with more than one, or one that is not a whole number >= 0, gets its
    Content-Length lines replaced by a MARK header, so that it is answered 400."""
    head, sep, body = data.partition('\r\n\r\n')
    lines = head.split('\r\n')
    found = [i for i, line in enumerate(lines) if _CL.match(line)]
    values = [_CL.match(lines[i]).group(2).strip() for i in found]
    if len(found) <= 1 and all(v.isdigit() for v in values):
        return data
    why = 'duplicated Content-Length' if len(found) > 1 else f'bad Content-Length {values[0][:20]!r}'
    for i in found:
        lines[i] = f'{MARK}: {why}'
    return '\r\n'.join(lines) + sep + body


def bad_request(req) -> Optional[str]:
    """Why a parsed request is malformed (the 400's reason), or None."""
    for name in SINGLE_HEADERS:
        if req.countHFs(name) > 1:
            return f'Bad Request (duplicated {name} header)'
    if req.countHFs(MARK.lower()):
        return f'Bad Request ({req.getHFBody(MARK.lower())})'
    return None


class FrontUdpServer(Udp_server):
    """sippy's UDP server, with the overload guard in front of the reactor.

    sippy's receiver thread queues every datagram for the reactor; past its capacity the
    queue grows without bound, every answer comes late and the reactor's timers starve
    (the on-board monitor then saw a deadlock and rebooted the unit). Here the receiver
    thread answers a new INVITE with a stateless 503 + Retry-After itself (no sippy
    parse) while the reactor is behind: more than MAX_BACKLOG datagrams queued, or more
    than LAG_BACKLOG while the last one handled waited more than MAX_LAG_S. Everything else (responses, ACK, BYE,
    re-INVITEs of established calls) is queued as before."""

    MAX_BACKLOG = 300
    share: Optional[SourceShare] = None     # new INVITEs per source (set by the stack)
    media_ready: Callable[[], bool] = staticmethod(lambda: True)   # (set by the stack)
    # a lagging reactor with little queued is a pause (a busy machine), not overload;
    # so is one that lags with a backlog for less than LAG_HOLD_S: a reactor the machine
    # did not schedule for half a second drains its backlog in tens of ms once it runs
    # (shedding then refused calls through a database host's restart on a 2-core box);
    # an overloaded one stays behind
    MAX_LAG_S, LAG_BACKLOG, LAG_HOLD_S = 0.5, 100, 1.0
    clock: Callable[[], float] = staticmethod(time.monotonic)
    log: Callable[[str], None] = print

    def __init__(self, global_config, uopts):
        uopts.direct_dispatch = True     # handle_read runs on the receiver thread
        self.queued = self.done = 0      # each written by one thread only: no lock
        self.lag = 0.0
        self.lagging_since: Optional[float] = None
        self.shed = 0
        self.shedding = False
        self._tag = f"{os.getpid():x}"
        self.media_seen, self.held = False, 0
        self.decided = Decisions()
        super().__init__(global_config, uopts)

    def handle_read(self, data, address, rtime, delayed=False):
        try:
            if self._shed(data, address):
                return
        except Exception as exc:        # never lose the receiver thread (the unit goes deaf)
            self.log(f"overload guard failed: {exc!r}")
        self.queued += 1
        ED2.callFromThread(self._on_reactor, data, Remote_address(address, self.transport), rtime)

    def _starting(self, data) -> bool:
        """A new INVITE before the stack's media relays were ever online: the first
        moments of a stack (the hot spare just given a unit binds its relays then, and
        sippy brings them online a few round trips later). It is dropped unanswered
        before sippy makes a transaction of it, so the caller's retransmission (T1,
        500 ms) finds the stack ready; a 503 here refused a call of a unit that had just
        answered its first on the spare (found by a chaos run). Later, a relay going
        offline is a real outage: that is the reactor's 503 (recvRequest)."""
        if self.media_seen:
            return False
        if self.media_ready():
            self.media_seen = True
            if self.held:
                self.log(f"media relays up: {self.held} new INVITEs were left unanswered "
                         f"until then (the callers retransmit)")
            return False
        if fast_busy(data, "", self._tag) is None:
            return False            # not a new INVITE (a re-INVITE, or one that does not parse)
        self.held += 1
        return True

    def _shed(self, data, address) -> bool:
        if data.startswith(b"ACK ") and is_shed_ack(data):
            return True
        if not data.startswith(b"INVITE "):
            return False
        cid = new_invite_call_id(data)
        if cid is not None:
            shed = self.decided.get(cid)
            if shed is not None:        # a retransmission: the first copy's answer
                resp = fast_busy(data, "overload", self._tag) if shed else None
                if resp is not None:
                    self.send_to(resp, address)
                return shed
        if self._starting(data):
            return True                 # not decided: the retransmission is taken
        if self.share is not None and not self.share.take(address[0]):
            resp = fast_busy(data, "overload: over this source's share of the new calls", self._tag)
            if resp is not None:          # None: in a dialog (a re-INVITE), never shed
                self._decide(cid, True)
                self.send_to(resp, address)
                return True
        backlog = self.queued - self.done
        behind = backlog > self.MAX_BACKLOG
        if self.lag > self.MAX_LAG_S and backlog > self.LAG_BACKLOG:
            now = self.clock()
            if self.lagging_since is None:
                self.lagging_since = now
            behind = behind or now - self.lagging_since >= self.LAG_HOLD_S
        else:
            self.lagging_since = None
        if behind:
            resp = fast_busy(data, "overload", self._tag)
            if resp is not None:
                self.shed += 1
                self._decide(cid, True)
                if not self.shedding:
                    self.shedding = True
                    self.log(f"overload: shedding new calls with 503 (backlog "
                             f"{self.queued - self.done} datagrams, lag {self.lag:.2f} s)")
                self.send_to(resp, address)
                return True
        elif self.shedding:
            self.shedding = False
            self.log(f"overload: over, {self.shed} new calls shed so far")
        self._decide(cid, False)
        return False

    def _decide(self, cid, shed: bool) -> None:
        if cid is not None:
            self.decided.put(cid, shed)

    beat: Callable[[], None] = staticmethod(lambda: None)

    def _on_reactor(self, data, address, rtime):
        self.done += 1
        self.lag = MonoTime() - rtime
        self.beat()        # the reactor runs: under a stream of datagrams its timers may wait
        super().handle_read(data, address, rtime)


class TbSipTransactionManager(SipTransactionManager):
    model_udp_server = (FrontUdpServer, OneWorkerUdpOpts)
    log: Callable[[str], None] = print
    tag = f"{os.getpid():x}"

    def handleIncoming(self, data_in, ra, server, rtime):
        if len(data_in) > MAX_SIP_BYTES:
            self.log(f"dropped a {len(data_in)}-byte SIP datagram from {ra.address} "
                     f"(limit {MAX_SIP_BYTES})")
            return
        raw = data_in if isinstance(data_in, bytes) else data_in.encode()
        if isinstance(data_in, bytes):
            data_in = data_in.decode(errors='replace')
        if not data_in.startswith('SIP/2.0'):
            answer, why = refusal(raw, self.tag)          # sip_checks.py
            if why is not None:
                self.log(f"refused a malformed request from {ra.address}: {why}"
                         f"{'' if answer else ' (not answered)'}")
                if answer:
                    server.send_to(answer, ra.address)
                return
            cut = datagram(raw)
            if cut is not raw:
                data_in = cut.decode(errors='replace')
            data_in = mark_bad_content_length(data_in)
        return super().handleIncoming(data_in, ra, server, rtime)

    def newTransaction(self, msg, *args, **kwargs):
        # sippy 2.5 defect: a peer's Contact with `transport=UDP` (upper case, as SIPp's
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


IN_DIALOG = ('BYE', 'INFO', 'PRACK')


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
        try:
            why = bad_request(req)
        except Exception:
            why = 'Bad Request (unparseable header)'
        if why is not None:
            self.stack.log(f"refused a malformed {method} from {req.getSource()}: {why}")
            return (req.genResponse(400, why), None, None)
        if to_tag is not None:
            return (req.genResponse(481, 'Call Leg/Transaction Does Not Exist'), None, None)
        if method == 'INVITE':
            if self.stopping:
                return (req.genResponse(503, 'Service Unavailable (stopping)'), None, None)
            refusal = self.stack.admission() if self.stack.admission is not None else None
            if refusal is not None:   # e.g. the SIP stack is disabled in the configuration
                return (req.genResponse(*refusal), None, None)
            # refused before a call controller exists: a call is only ever made, and put
            # in ccmap, when it can be taken (right after a reboot the relay is not ready)
            why = 'media relay not ready' if not self.stack.media_ready() else self.stack.overload.refuse()
            if why is not None:
                return (self.stack.busy(req, why), None, None)
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
        if method in IN_DIALOG:     # out of a dialog: there is none it could belong to
            return (req.genResponse(481, 'Call Leg/Transaction Does Not Exist'), None, None)
        resp = req.genResponse(405, 'Method Not Allowed')   # a 4xx, not 501: with Allow
        resp.appendHeader(SipHeader(name='allow', bodys=ALLOW))
        return (resp, None, None)

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
                 no_reply_s: int = 2, rtp_loglevel: str = "err",
                 media_paths: Optional[list] = None, path_probes: Optional[dict] = None,
                 max_cps: float = 150.0, max_pending: int = 200):
        ipaddress.IPv4Address(sip_ip)   # sippy needs a concrete address for Via/Contact/SDP
        if sip_ip == "0.0.0.0":
            raise ValueError("the SIP address must be a concrete IPv4 address, not 0.0.0.0")
        self.unit, self.sip_ip, self.sip_port = unit, sip_ip, int(sip_port)
        self.counters, self.lease_fn, self.gateways, self.log = counters, lease_fn, gateways, log
        self.rtp_ports, self.no_reply_s, self.rtp_loglevel = rtp_ports, int(no_reply_s), rtp_loglevel
        # voice paths: [(name, local ip), ...], a media relay each; None: one relay on sip_ip
        self.media_paths = media_paths or None
        self.path_probes = path_probes or {}
        self.paths: Optional[PathMonitor] = None
        self.global_config = None
        self.rtpcs: list = []
        self.cmap = None
        self.stm = None
        self._stop_deadline = None
        self._stop_timer = None
        # set by the control agent (attach): None, or (code, reason) to refuse new INVITEs
        self.admission: Optional[Callable[[], Optional[tuple]]] = None
        self.overload = Admission(max_cps, max_pending, gateways.pending_count)
        self.beat = ReactorBeat()
        self._beat_timer = None

    def busy(self, req, why: str):
        """The 503 of a new call the stack cannot take now, with Retry-After."""
        resp = req.genResponse(503, f'Service Unavailable ({why})')
        resp.appendHeader(named_header('Retry-After', str(RETRY_AFTER_S)))
        return resp

    # --- media --------------------------------------------------------------------------
    def media_ready(self) -> bool:
        """A relay can take a new call (TbRtpSession picks among the online ones). Not
        all of them: a relay whose heartbeat answer came late (a busy machine) is offline
        for a moment, and refusing every call for it turned one slow answer into 503s."""
        return any(c.online for c in self.rtpcs)

    def rtp_stats(self) -> dict:
        if not self.rtpcs or any(c.ptransmitted is None for c in self.rtpcs):
            return {}
        return {"packets_transmitted": sum(c.ptransmitted for c in self.rtpcs),
                "packets_received": sum(c.preceived for c in self.rtpcs),
                "active_sessions": sum(c.active_sessions or 0 for c in self.rtpcs)}

    def path_status(self) -> dict:
        return self.paths.status() if self.paths is not None else {}

    def path_downs(self) -> dict:
        return dict(self.paths.downs) if self.paths is not None else {}

    def _path_changed(self, name: str, up: bool) -> None:
        for c in self.rtpcs:        # read on the reactor when a call picks its relay
            if c.path == name:
                c.path_up = up

    # --- calls, for the control agent (list, close) ----------------------------------------
    def on_reactor(self, fn: Callable, timeout: float):
        """Run fn() on sippy's reactor from another thread and return its result; raise
        TimeoutError when the reactor has not run it within `timeout` seconds."""
        done, box = threading.Event(), {}

        def run():
            try:
                box["value"] = fn()
            except Exception as exc:   # handed back to the caller's thread
                box["error"] = exc
            finally:
                done.set()
        ED2.callFromThread(run)
        if not done.wait(timeout):
            raise TimeoutError("sippy's reactor did not answer in time")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def live_call_info(self) -> list:
        """On the reactor: the calls in progress (A-leg Call-ID, caller, called number)."""
        out = []
        for cc in self.cmap.live_calls() if self.cmap is not None else ():
            if cc.cId is None:
                continue
            rr = cc.route_result
            out.append({"call_id": cc.call_id, "cli": getattr(cc, "cli", None),
                        "cld": getattr(cc, "cld", None), "answered": cc.answered,
                        "voice_path": cc.path,
                        "gateway": rr.gateway if rr is not None else None})
        return out

    def close_call(self, call_id: str) -> bool:
        """On the reactor: hang up a call in progress (BYE, or CANCEL/error before the
        answer, to both legs), as the system does when the operator closes it."""
        for cc in self.cmap.live_calls() if self.cmap is not None else ():
            if cc.cId is not None and cc.call_id == call_id:
                cc.disconnect(origin='gateway')
                return True
        return False

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
        for path, ip in self.media_paths or [(None, self.sip_ip)]:
            args = ['-l', ip, '-F', '-d', self.rtp_loglevel]
            if self.rtp_ports is not None:
                args += ['-m', str(self.rtp_ports[0]), '-M', str(self.rtp_ports[1])]
            c = PinnedRtpClient(gc, spath='rtp.io:' + ';'.join(args))
            c.proxy_address = ip       # the address written into SDP (sippy's default: SIP's)
            c.path, c.path_up = path, True
            self.rtpcs.append(c)
        gc['_rtp_proxy_clients'] = self.rtpcs
        if self.media_paths and self.path_probes:
            self.paths = PathMonitor({n: (ip, self.path_probes.get(n, [])) for n, ip in self.media_paths},
                                     log=self.log, on_change=self._path_changed).start()
        FrontUdpServer.log = staticmethod(self.log)
        FrontUdpServer.beat = staticmethod(self.beat.beat)
        FrontUdpServer.share = self.share = SourceShare(self.overload.max_cps)
        FrontUdpServer.media_ready = staticmethod(self.media_ready)
        self.stm = TbSipTransactionManager(gc, self.cmap.recvRequest)
        self.stm.log = self.log
        gc['_sip_tm'] = self.stm
        self.counters.rtp_stats = self.rtp_stats
        self.counters.path_status = self.path_status
        self.counters.path_downs = self.path_downs
        self.counters.shed = lambda: self.overload.shed + self.share.shed + sum(
            getattr(u, "shed", 0) for u in self._udp_servers())
        # the reactor's liveness for the on-board monitor (ReactorBeat)
        self._beat_timer = Timeout(self.beat.beat, 0.1, -1)
        return self

    def run(self) -> None:
        """Run sippy's reactor until stop() has finished."""
        ED2.loop()

    def stop(self, grace_s: float = 2.0) -> None:
        """On the reactor: refuse new calls, hang up the ones in progress (BYE/CANCEL to both
        legs) and leave the loop when they are gone or after grace_s. A second stop
        request leaves the loop at once."""
        if self._stop_deadline is not None:
            ED2.breakLoop()
            return
        self._stop_deadline = MonoTime().getOffsetCopy(grace_s)
        self._stop_timer = Timeout(self._check_stopped, 0.05, -1)
        self.cmap.stopping = True
        self.log(f"stopping: hanging up {len(self.cmap.live_calls())} call(s)")
        self.cmap.disc_all()

    def _check_stopped(self):
        try:
            done = not self.cmap.live_calls()
        except Exception:
            done = True
        if done or MonoTime() > self._stop_deadline:
            self._stop_timer.cancel()
            ED2.breakLoop()

    def _udp_servers(self) -> list:
        l4r = getattr(self.stm, "l4r", None)
        cache = getattr(l4r, "cache_l2s", None) or {}
        return list(cache.values())

    def stop_from_thread(self) -> None:
        ED2.callFromThread(self.stop)

    def shutdown(self) -> None:
        """After run() returned: close the SIP sockets and the media relay."""
        if self.stm is not None:
            try:
                self.stm.l4r.shutdown()
            except Exception:
                pass
        if self.paths is not None:
            self.paths.stop()
        for c in self.rtpcs:
            try:
                c.shutdown()
            except Exception:
                pass
