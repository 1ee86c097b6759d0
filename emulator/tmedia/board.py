"""Entry point of one TMedia unit: `python -m emulator.tmedia.board` (one per container).

The board is what stays up while the unit's SIP application comes and goes: the
control agent (lease, configuration, `assume`), the bonded VoIP ports (ports.py), the
hardware-style watchdog and the on-board process monitor (monitor.py), and the SIP
application processes it starts (`python -m emulator.tmedia.unit`): one SIP stack (with
its media relay) per IP interface of the unit it serves, the bond's address and each
virtual port (ports.VirtualPorts). N+1: a board serves one unit's interfaces or none
(the spare); the active host's sys_manager tells it which with `assume`. A reboot is the board exiting with status 75: Docker's restart policy
(`on-failure`) starts the container anew, with nothing served and no configuration, as
a real unit comes back from a reboot.

Environment:
  TMEDIA_NAME           board name (required), e.g. tmedia-3
  TMEDIA_PORT_IPS       "ip1,ip2": the Docker addresses of the two VoIP ports (networks
                        voip-p1, voip-p2); unset: no bond (a local test on 127.0.0.1)
  TMEDIA_SERVICE        "unit=ip/prefix": serve this from boot (local tests); unset: wait
                        for `assume`
  TMEDIA_CONTROL_IP/PORT  control agent (0.0.0.0:7000)
  TMEDIA_APP_PORT       local link to the first SIP application (7001; the next ones +1, +2)
  TMEDIA_VXLAN_PEERS    the hosts at the other end of the virtual ports (comma-separated):
                        their frames go to these addresses (VXLAN underlay), and they are
                        the media peers the voice paths reach over each virtual port
  TMEDIA_WATCHDOG_MS    reboot when no host polled for this long (5000)
  TMEDIA_FENCE_MS       give up the served interface when no host polled for this long
                        (1500): a unit cut off from both hosts must be silent on the VoIP
                        network before the host moves its address to the spare
  TMEDIA_DEADLOCK_MS    reboot when the SIP application's heartbeat stops this long (1500)
  TMEDIA_HOT_STACKS     SIP applications kept started and waiting while the board serves
                        nothing (hot_spare.py): 3, the bond and two virtual ports; 0 for a
                        cold spare, whose stacks start only when it is given a unit
  TMEDIA_BOOT_DIR       where the boot record and the lease log (lease.jsonl) survive
                        reboots (/var/lib/tmedia)
  and the SIP application's own variables (unit.py), passed on to it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from typing import Optional

from .app_link import TICK_S, AppLink
from .control import ControlAgent
from .hot_spare import HotSpare
from .lease import LeaseLog
from .log import flush as flush_log
from .log import log as log_line
from .monitor import AppWatch, Watchdog
from ..priority import normal
from .port_probe import PortProbe
from .ports import PORTS, Bond, VirtualPorts, carrier, peer_on, unit_mac
from .ss7_app import Ss7Process

REBOOT_EXIT = 75
LOOP_S = 0.01          # link check period: a port failover starts within 10 ms


def _ms(env, name, default) -> float:
    raw = env.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"tmedia: bad configuration: {name}={raw!r} is not milliseconds")
    if value <= 0:
        raise SystemExit(f"tmedia: bad configuration: {name}={raw!r} must be > 0")
    return value / 1000.0


class App:
    """One SIP application process: a SIP stack and its media relay on one interface."""

    def __init__(self, stack: str, ip: str, port: int, deadlock: float):
        self.stack, self.ip, self.port = stack, ip, port
        self.link = AppLink(port)
        self.watch = AppWatch(deadlock, startup=20.0)
        self.proc: Optional[subprocess.Popen] = None

    def info(self) -> dict:
        p = self.proc
        return {"stack": self.stack, "ip": self.ip, "pid": p.pid if p else None,
                "running": p is not None and p.poll() is None,
                "heartbeat": self.watch.last_hb is not None}


class AppCounters:
    """The control agent's counters: the sums of the SIP applications' last heartbeats
    (the media counters stay None until every application's relay has reported)."""

    def __init__(self, board: "Board"):
        self.board = board

    def snapshot(self) -> dict:
        apps = list(self.board.apps)
        cs = [a.link.counters() for a in apps]
        out = {k: sum(c.get(k, 0) for c in cs)
               for k in ("calls_active", "calls_total", "calls_answered", "calls_failed", "calls_shed")}
        for k in ("rtp_packets", "rtp_packets_received", "rtp_sessions_active"):
            vals = [c.get(k) for c in cs]
            out[k] = None if not vals or None in vals else sum(vals)
        out["calls_by_voice_path"] = {}
        out["voice_paths"], out["voice_path_downs"] = {}, {}
        for c in cs:
            for path, n in (c.get("calls_by_voice_path") or {}).items():
                out["calls_by_voice_path"][path] = out["calls_by_voice_path"].get(path, 0) + n
            out["voice_paths"].update(c.get("voice_paths") or {})
            out["voice_path_downs"].update(c.get("voice_path_downs") or {})
        return out


class Stacks:
    """What the control agent asks of the SIP applications: every stack's calls."""

    def __init__(self, board: "Board"):
        self.board = board

    def list_calls(self, timeout: float) -> list:
        return [c for a in list(self.board.apps) for c in a.link.list_calls(timeout)]

    def close_call(self, call_id: str, timeout: float) -> bool:
        return any(a.link.close_call(call_id, timeout) for a in list(self.board.apps))


class Board:
    def __init__(self, env):
        self.env = dict(env)
        self.name = env.get("TMEDIA_NAME", "").strip()
        if not self.name:
            raise SystemExit("tmedia: bad configuration: TMEDIA_NAME is not set")
        self.log = partial(log_line, self.name)
        self.watchdog = Watchdog(_ms(env, "TMEDIA_WATCHDOG_MS", 5000))
        self.fence_s = _ms(env, "TMEDIA_FENCE_MS", 1500)
        self.deadlock_s = _ms(env, "TMEDIA_DEADLOCK_MS", 1500)
        self.app_port = int(env.get("TMEDIA_APP_PORT", "7001"))
        self.boot_dir = env.get("TMEDIA_BOOT_DIR", "/var/lib/tmedia")
        self.boot = self._record_boot()
        ips = [x.strip() for x in env.get("TMEDIA_PORT_IPS", "").split(",") if x.strip()]
        # the port monitor: carrier, and ARP probes to the VoIP switch (port_probe.py)
        target = env.get("TMEDIA_ARP_TARGET", "").strip()
        self.probe = PortProbe(self.name, PORTS, target, log=self.log) if ips and target else None
        self.bond = Bond(unit_mac(self.name), log=self.log, link_fn=self._link) if ips else None
        self.peers = tuple(x.strip() for x in env.get("TMEDIA_VXLAN_PEERS", "").split(",") if x.strip())
        self.vports = VirtualPorts(self.peers, log=self.log) if ips else None
        self.port_ips = tuple(ips)
        self.fixed = env.get("TMEDIA_SERVICE", "").strip()
        self._lock = threading.Lock()
        self.serves: Optional[str] = None      # unit served now, its address and vlans
        self.address: Optional[str] = None
        self.vlans: tuple = ()
        self.wanted: tuple = (None, None, ())   # what the last `assume` asked for
        self.assigned_by: Optional[str] = None
        self.assumed_at: Optional[float] = None
        self.apps: list[App] = []
        self.fenced = False
        # the lease changes for the harness, beside the boot record (survives reboots)
        self.lease_log = LeaseLog(os.path.join(self.boot_dir, "lease.jsonl"), self.name)
        self.lease_log.boot()
        self.agent = ControlAgent(self.name, AppCounters(self), log=self.log,
                                  port=int(env.get("TMEDIA_CONTROL_PORT", "7000")),
                                  host=env.get("TMEDIA_CONTROL_IP", "0.0.0.0"), board=self,
                                  lease_log=self.lease_log)
        self.agent.attach(Stacks(self))
        hot = env.get("TMEDIA_HOT_STACKS", "3").strip() or "3"
        if not hot.isdigit():
            raise SystemExit(f"tmedia: bad configuration: TMEDIA_HOT_STACKS={hot!r} is not a count")
        self.hot = HotSpare(normal([sys.executable, "-m", "emulator.tmedia.unit"]), self.env,
                            int(hot), log=self.log)
        # nothing until the engine pushes an SS7 configuration (ss7_app.py)
        self.ss7 = Ss7Process(None, self.log, self.env)
        self.stop = threading.Event()

    # --- boot record (survives reboots: the container's own filesystem) --------------
    def _record_boot(self) -> dict:
        path = os.path.join(self.boot_dir, "boot.json")
        try:
            with open(path) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            rec = {"boots": 0, "reboots": []}
        rec["boots"] = int(rec.get("boots", 0)) + 1
        rec["booted_at"] = time.time()
        self._write_boot(rec)
        return rec

    def _write_boot(self, rec: dict) -> None:
        try:
            os.makedirs(self.boot_dir, exist_ok=True)
            tmp = os.path.join(self.boot_dir, "boot.json.tmp")
            with open(tmp, "w") as f:
                json.dump(rec, f)
            os.replace(tmp, os.path.join(self.boot_dir, "boot.json"))
        except OSError as exc:
            self.log(f"cannot write the boot record: {exc}")

    def reboot(self, reason: str) -> None:
        """Record why, stop the SIP application hard (its calls drop, as on a real
        reboot) and exit: Docker starts the container again."""
        self.log(f"REBOOT: {reason}")
        self.boot["reboots"] = (self.boot.get("reboots", []) + [{"at": time.time(), "reason": reason}])[-20:]
        self._write_boot(self.boot)
        for app in self.apps:
            try:
                app.proc.kill()
            except (OSError, AttributeError):
                pass
        self.ss7.stop(kill=True)
        flush_log()        # os._exit runs no atexit: the REBOOT line must reach the log
        os._exit(REBOOT_EXIT)

    # --- what the control agent asks --------------------------------------------------
    def polled(self) -> None:
        self.watchdog.kick()

    def assume(self, unit: Optional[str], address: Optional[str], vlans, by: str) -> None:
        wanted = (unit, address, tuple(tuple(v) for v in vlans or ()))
        with self._lock:
            if wanted != self.wanted:
                self.log(f"assume {unit or 'nothing (spare)'}{' at ' + address if address else ''}"
                         f"{' vlans ' + str([list(v) for v in wanted[2]]) if wanted[2] else ''} "
                         f"(asked by {by})")
            self.wanted, self.assigned_by = wanted, by

    def fields(self) -> dict:
        last = (self.boot.get("reboots") or [None])[-1]
        apps = [a.info() for a in list(self.apps)]
        return {"board": self.name, "serves": self.serves, "address": self.address,
                "vports": self.vports.status() if self.vports else [],
                "sip_stacks": apps,
                "spare": self.serves is None, "fenced": self.fenced,
                "assumed_at": self.assumed_at,
                "bond": dict(self.bond.status(), arp_monitor=self.probe.status() if self.probe else None)
                if self.bond else None,
                "boots": self.boot["boots"], "last_reboot": last,
                "watchdog": self.watchdog.status(),
                "app": apps[0] if apps else None, "hot_spare": self.hot.status(),
                "ss7": self.ss7.status()}

    # --- the SIP applications ---------------------------------------------------------
    def _start_apps(self, unit: str, address: str, vlans: tuple) -> None:
        interfaces = [("sip-0", address)] + [(f"sip-vlan{vid}", a) for vid, a in vlans]
        apps = []
        for i, (stack, ip) in enumerate(interfaces):
            app = App(stack, ip.split("/")[0], self.app_port + i, self.deadlock_s)
            env = dict(self.env, TMEDIA_NAME=unit, TMEDIA_BOARD=self.name, TMEDIA_STACK=stack,
                       TMEDIA_SIP_IP=app.ip, TMEDIA_APP_PORT=str(app.port))
            if i == 0 and vlans and self.peers:
                # the bond's SIP stack relays media over the virtual ports: its voice paths
                env["TMEDIA_MEDIA_PATHS"] = ",".join(f"{vid}={a.split('/')[0]}" for vid, a in vlans)
                env["TMEDIA_PATH_PROBES"] = ",".join(
                    f"{vid}=" + "+".join(peer_on(a, p) for p in self.peers) for vid, a in vlans)
            if i > 0 and env.get("TMEDIA_STATE_DIR"):
                env["TMEDIA_STATE_DIR"] = f"{env['TMEDIA_STATE_DIR']}-{stack}"
            elif i > 0 or not env.get("TMEDIA_STATE_DIR"):
                env["TMEDIA_STATE_DIR"] = f"/tmp/tmedia-{unit}-{stack}"
            assignment = {k: v for k, v in env.items() if self.env.get(k) != v}
            app.proc = self.hot.take(assignment)
            how = "hot"
            if app.proc is None:
                # the SIP application carries calls, not HA timers: normal priority
                app.proc = subprocess.Popen(normal([sys.executable, "-m", "emulator.tmedia.unit"]), env=env)
                how = "cold"
            app.watch.started()
            apps.append(app)
            self.log(f"SIP stack {stack} of {unit} started {how} (pid {app.proc.pid}) on {app.ip}")
        self.apps = apps

    def _stop_apps(self) -> None:
        self.ss7.stop()
        apps, self.apps = self.apps, []
        for app in apps:
            app.proc.terminate()           # hangs up its calls (BYE) and exits
        for app in apps:
            try:
                app.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                app.proc.kill()
                app.proc.wait()
            app.link.close()
            self.log(f"SIP stack {app.stack} stopped (exit status {app.proc.returncode})")

    def _serve(self, unit: Optional[str], address: Optional[str], vlans: tuple) -> None:
        """Carry out an assignment: stop the applications, move the addresses, start them."""
        if (unit, address, vlans) == (self.serves, self.address, self.vlans):
            return
        self._stop_apps()
        self.agent.config = None     # accept calls until the engine configures the new unit
        if self.bond is not None:
            self.bond.set_addresses([address] if address else [])
            self.vports.set(list(vlans), address.split("/")[0] if address else None)
        self.serves, self.address, self.vlans = unit, address, vlans
        self.assumed_at = time.time() if unit else None
        if unit:
            self._start_apps(unit, address, vlans)
            self.ss7.start(unit)

    def _link(self, port: str) -> bool:
        """A port is up with carrier and, when probing, answering its ARP probes."""
        up = carrier(port)
        if self.probe is None:
            return up
        self.probe.carrier_changed(port, up)
        return up and self.probe.alive(port)

    # --- main loop --------------------------------------------------------------------
    def run(self) -> int:
        if self.probe is not None:
            self.probe.start()
        if self.bond is not None:
            self.bond.build(self.port_ips)
        if self.fixed:
            unit, address = self.fixed.split("=", 1)
            self.wanted = (unit, address if "/" in address else address + "/32", ())
        try:
            self.agent.start()
        except OSError as exc:
            print(f"tmedia: cannot bind control port: {exc}", file=sys.stderr)
            return 2
        self.log(f"board up (boot {self.boot['boots']}): ports "
                 f"{self.bond.status() if self.bond else 'none (local)'}, watchdog "
                 f"{self.watchdog.timeout:g} s, fence {self.fence_s:g} s")
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        next_tick = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            change = self.bond.check() if self.bond is not None else None
            if change == "down" and self.serves:
                self.log("both VoIP ports down: unit down, giving up its interfaces")
                with self._lock:
                    self.wanted = (None, None, ())
            elif change is not None and self.vports is not None:
                self.vports.announce()      # the virtual ports moved with the bond
            self._fence()
            with self._lock:
                wanted = self.wanted
            if self.bond is not None and not self.bond.logic.up:
                wanted = (None, None, ())
            self._serve(*wanted)
            if self.serves is None:
                self.hot.fill()       # only while idle: never beside stacks just started
            tick = now >= next_tick
            if tick:
                next_tick = now + TICK_S
                lease, admission = self.agent.current_lease(), self.agent.admission()
            for app in self.apps:
                if tick:
                    app.link.tick(lease, admission)
                if app.link.drain():
                    app.watch.heartbeat(app.link.reactor_age())
                verdict = app.watch.verdict(app.proc.poll())
                if verdict:
                    self.reboot(f"{verdict} [{app.stack}]")
            if self.watchdog.expired():
                self.reboot(f"watchdog: no host polled for {self.watchdog.timeout:g} s")
            if tick:
                cfg = self.agent.config        # None between an assignment and its push
                if cfg is not None and "ss7" in cfg:
                    self.ss7.configure(cfg["ss7"], self.serves)
                self.ss7.set_enabled(self.agent.ss7_enabled())
                self.ss7.check()
            time.sleep(LOOP_S)
        self.log("stopping")
        self.hot.close()
        self._stop_apps()
        self.agent.stop()
        return 0

    def _fence(self) -> None:
        """No host has polled for fence_s: give up the served interface (a host will
        have moved it to the spare), keep answering control (polls may come back)."""
        if self.fixed:
            return
        since = self.watchdog.since_kick()
        fenced = since is not None and since > self.fence_s
        if fenced and not self.fenced and self.serves:
            self.log(f"no poll for {since:.1f} s: giving up {self.serves}'s interface")
            with self._lock:
                self.wanted = (None, None, ())
        self.fenced = fenced


def main() -> int:
    from .. import sshd
    from ..priority import raise_priority
    name = os.environ.get("TMEDIA_NAME", "tmedia")
    # keys mounted by the bring-up: reachable over SSH; started before the priority is
    # raised, which a child would inherit
    if sshd.start() is not None:
        log_line(name, "sshd started (keys from the bring-up)")
    raise_priority(lambda m: log_line(name, m))
    return Board(os.environ).run()


if __name__ == "__main__":
    sys.exit(main())
