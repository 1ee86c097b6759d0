"""The SIP application of a TMedia unit: `python -m emulator.tmedia.unit`, started by the
unit's board (board.py) for the unit it serves.

It exists to wire the parts together from the environment: the link to the board
(lease and admission in, heartbeat and counters out: app_link.py), the gateway client
(routes, call events) and the SIP stack (sippy B2BUA with the rtp.io media relay), then
run sippy's reactor on the main thread until SIGTERM or SIGINT, which hang up the calls
in progress and stop cleanly (exit 0).

Environment:
  TMEDIA_NAME          the served unit's name, e.g. tmedia-1 (required)
  TMEDIA_BOARD         the board it runs on (for the log; TMEDIA_NAME when unset)
  TMEDIA_STACK         which of the unit's SIP stacks this is (for the log; sip-0)
  TMEDIA_SIP_IP        the unit's VoIP address; SIP and RTP bind to it (required, concrete:
                       sippy writes it into Via, Contact and SDP)
  TMEDIA_SIP_PORT      SIP UDP port (5060)
  TMEDIA_RTP_PORTS     RTP port range MIN-MAX for the relay (rtpproxy's default when unset)
  TMEDIA_NO_REPLY_S    seconds a route may stay silent before the next one is tried (2)
  TMEDIA_STATE_DIR     the unit's working directory (<tmp>/tmedia-<name>): rtp.io's
                       rtpproxy appends one line per call's media to rtpproxy_acct.csv
                       in the working directory (packets each way, relayed, lost, jitter)
  TMEDIA_RTP_LOGLEVEL  rtpproxy's log level on stderr: err (default), warn, info (one
                       line per stream with its packet counts at the end of each call)
  TMEDIA_SIP_TRACE     set to log every SIP message to stderr (sippy's SipLogger)
  TMEDIA_MEDIA_PATHS   voice paths "name=ip,name=ip": a media relay on each (voice_paths.py);
                       unset: one relay on TMEDIA_SIP_IP
  TMEDIA_PATH_PROBES   "name=ip+ip,...": the addresses that must answer for a path to be up
  TMEDIA_MAX_CPS       new calls a second this SIP application takes; beyond, 503 with
                       Retry-After (overload.py; default 150)
  TMEDIA_MAX_PENDING   calls waiting for a route at once; beyond, 503 (default 200)
Bad configuration or an address that cannot be bound: a one-line message on stderr and
exit status 2.

`python -m emulator.tmedia.unit --wait`: a hot spare's process (hot_spare.py), which
reads these variables as one JSON line on stdin before it starts.
"""
from __future__ import annotations

import ipaddress
import os
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from typing import Mapping, Optional

from .log import log as log_line


class ConfigError(ValueError):
    pass


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{name}={raw!r} is not in 1..65535")
    return port


def _ipv4(env: Mapping[str, str], name: str, default: Optional[str]) -> str:
    raw = env.get(name, "").strip() or default
    if raw is None:
        raise ConfigError(f"{name} is not set")
    try:
        ipaddress.IPv4Address(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an IPv4 address") from None
    return raw


@dataclass(frozen=True)
class Config:
    name: str
    sip_ip: str
    sip_port: int = 5060
    app_port: int = 7001
    board: str = ""
    media_paths: tuple = ()
    path_probes: tuple = ()
    rtp_ports: Optional[tuple] = None
    no_reply_s: int = 2
    rtp_loglevel: str = "err"
    state_dir: str = ""
    max_cps: float = 150.0
    max_pending: int = 200

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Config":
        name = env.get("TMEDIA_NAME", "").strip()
        if not name:
            raise ConfigError("TMEDIA_NAME is not set (the unit's name, e.g. tmedia-1)")
        sip_ip = _ipv4(env, "TMEDIA_SIP_IP", None)
        if sip_ip == "0.0.0.0":
            raise ConfigError("TMEDIA_SIP_IP must be the unit's VoIP address, not 0.0.0.0 "
                              "(sippy writes it into Via, Contact and SDP)")
        rtp_ports = None
        raw = env.get("TMEDIA_RTP_PORTS", "").strip()
        if raw:
            try:
                lo, hi = (int(x) for x in raw.split("-", 1))
            except ValueError:
                raise ConfigError(f"TMEDIA_RTP_PORTS={raw!r}: want MIN-MAX") from None
            if not 1024 <= lo < hi < 65536:
                raise ConfigError(f"TMEDIA_RTP_PORTS={raw!r}: want 1024 <= MIN < MAX < 65536")
            rtp_ports = (lo, hi)
        raw = env.get("TMEDIA_NO_REPLY_S", "").strip() or "2"
        try:
            no_reply_s = int(raw)
        except ValueError:
            raise ConfigError(f"TMEDIA_NO_REPLY_S={raw!r} is not a whole number of seconds") from None
        if not 1 <= no_reply_s <= 31:
            raise ConfigError(f"TMEDIA_NO_REPLY_S={raw!r}: want 1..31 (sippy ignores 32 and more)")
        rtp_loglevel = env.get("TMEDIA_RTP_LOGLEVEL", "").strip() or "err"
        if rtp_loglevel not in ("dbug", "info", "warn", "err", "crit"):
            raise ConfigError(f"TMEDIA_RTP_LOGLEVEL={rtp_loglevel!r}: want err, warn, info or dbug")
        try:
            max_cps = float(env.get("TMEDIA_MAX_CPS", "").strip() or 150)
            max_pending = int(env.get("TMEDIA_MAX_PENDING", "").strip() or 200)
        except ValueError:
            raise ConfigError("TMEDIA_MAX_CPS / TMEDIA_MAX_PENDING: want numbers") from None
        if max_cps <= 0 or max_pending <= 0:
            raise ConfigError("TMEDIA_MAX_CPS and TMEDIA_MAX_PENDING must be > 0")
        state_dir = os.path.abspath(env.get("TMEDIA_STATE_DIR", "").strip() or
                                    os.path.join(tempfile.gettempdir(), f"tmedia-{name}"))
        paths, probes = [], []
        for item in filter(None, (x.strip() for x in env.get("TMEDIA_MEDIA_PATHS", "").split(","))):
            pname, _, pip = item.partition("=")
            paths.append((pname, _ipv4({"x": pip}, "x", None)))
        for item in filter(None, (x.strip() for x in env.get("TMEDIA_PATH_PROBES", "").split(","))):
            pname, _, ips = item.partition("=")
            probes.append((pname, tuple(_ipv4({"x": i}, "x", None) for i in ips.split("+") if i)))
        return cls(name=name, state_dir=state_dir, media_paths=tuple(paths), path_probes=tuple(probes), sip_ip=sip_ip, sip_port=_port(env, "TMEDIA_SIP_PORT", 5060),
                   app_port=_port(env, "TMEDIA_APP_PORT", 7001),
                   board=env.get("TMEDIA_BOARD", "").strip() or name,
                   rtp_ports=rtp_ports, no_reply_s=no_reply_s, rtp_loglevel=rtp_loglevel,
                   max_cps=max_cps, max_pending=max_pending)


def main(env: Optional[Mapping[str, str]] = None) -> int:
    env = os.environ if env is None else env
    try:
        cfg = Config.from_env(env)
    except ConfigError as exc:
        print(f"tmedia: bad configuration: {exc}", file=sys.stderr)
        return 2

    # sippy is imported only now: its reactor (ED2) is a singleton made at import time
    # and must belong to the main thread.
    from signal import SIGINT, SIGTERM
    from sippy.Signal import Signal
    from .app_link import BoardLink
    from .counters import Counters
    from .gateway_client import GatewayClient
    from .sip_stack import SipStack

    # rtp.io's rtpproxy writes its per-call accounting (rtpproxy_acct.csv) into the
    # working directory: make that the unit's state directory, not wherever it started
    try:
        os.makedirs(cfg.state_dir, exist_ok=True)
        os.chdir(cfg.state_dir)
    except OSError as exc:
        print(f"tmedia: bad configuration: TMEDIA_STATE_DIR={cfg.state_dir!r}: {exc}", file=sys.stderr)
        return 2

    stack = env.get("TMEDIA_STACK", "sip-0")
    who = cfg.name + ("" if stack == "sip-0" else f"/{stack}") + \
        ("" if cfg.board == cfg.name else f"@{cfg.board}")
    log = partial(log_line, who)
    counters = Counters()
    try:
        link = BoardLink(cfg.app_port, log=log)
    except OSError as exc:
        print(f"tmedia: cannot bind the board link 127.0.0.1:{cfg.app_port}: {exc}", file=sys.stderr)
        return 2
    gateways = GatewayClient(cfg.name, log=log)
    stack = SipStack(cfg.name, cfg.sip_ip, cfg.sip_port, counters, link.current_lease, gateways,
                     log=log, rtp_ports=cfg.rtp_ports, no_reply_s=cfg.no_reply_s,
                     rtp_loglevel=cfg.rtp_loglevel, media_paths=list(cfg.media_paths),
                     path_probes={n: list(t) for n, t in cfg.path_probes},
                     max_cps=cfg.max_cps, max_pending=cfg.max_pending)
    stack.admission = link.admission     # a disabled SIP stack refuses new calls
    link.attach(stack, counters)
    try:
        stack.start()
    except OSError as exc:
        print(f"tmedia: cannot bind SIP/RTP on {cfg.sip_ip}:{cfg.sip_port}: {exc}", file=sys.stderr)
        link.stop()
        return 2
    link.start()
    gateways.start()

    def on_signal(signum):
        log(f"signal {signum}: stopping")
        stack.stop()

    Signal(SIGTERM, on_signal, SIGTERM)
    Signal(SIGINT, on_signal, SIGINT)
    log(f"started: SIP {cfg.sip_ip}:{cfg.sip_port} (media via rtp.io on {cfg.sip_ip}"
        f"{' ports %d-%d' % cfg.rtp_ports if cfg.rtp_ports else ''}), "
        f"board link 127.0.0.1:{cfg.app_port}, media accounting "
        f"{os.path.join(cfg.state_dir, 'rtpproxy_acct.csv')}")
    try:
        stack.run()
    finally:
        stack.shutdown()
        gateways.stop()
        link.stop()
    log("stopped")
    return 0


def wait_for_assignment() -> int:
    """The hot spare's waiting process (hot_spare.py): import now what a start needs,
    then wait for the assignment, one JSON object of environment variables on stdin
    (EOF: exit 0), and run as a cold-started application with it."""
    import json
    import sippy.Signal  # noqa: F401  (the imports main() makes, and the media relay's)
    import sippy.Rtp_proxy.Client.internal  # noqa: F401
    from . import app_link, counters, gateway_client, sip_stack  # noqa: F401
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    try:
        assignment = json.loads(line)
        if not isinstance(assignment, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in assignment.items()):
            raise ValueError("want an object of strings")
    except ValueError as exc:
        print(f"tmedia: bad assignment on stdin: {exc}", file=sys.stderr)
        return 2
    os.environ.update(assignment)
    return main()


if __name__ == "__main__":
    sys.exit(wait_for_assignment() if sys.argv[1:] == ["--wait"] else main())
