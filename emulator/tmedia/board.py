"""Entry point of one TMedia unit: `python -m emulator.tmedia.board` (one per container).

The board is what stays up while the unit's SIP application comes and goes: the
control agent (lease, configuration, `assume`), the bonded VoIP ports (ports.py), the
hardware-style watchdog and the on-board process monitor (monitor.py), and the SIP
application process it starts (`python -m emulator.tmedia.unit`) for the unit it
serves. N+1: a board serves one unit's VoIP interface (address on the bond, SIP stack
and media on it) or none (the spare); the active host's sys_manager tells it which with
`assume`. A reboot is the board exiting with status 75: Docker's restart policy
(`on-failure`) starts the container anew, with nothing served and no configuration, as
a real unit comes back from a reboot.

Environment:
  TMEDIA_NAME           board name (required), e.g. tmedia-3
  TMEDIA_PORT_IPS       "ip1,ip2": the Docker addresses of the two VoIP ports (networks
                        voip-p1, voip-p2); unset: no bond (a local test on 127.0.0.1)
  TMEDIA_SERVICE        "unit=ip/prefix": serve this from boot (local tests); unset: wait
                        for `assume`
  TMEDIA_CONTROL_IP/PORT  control agent (0.0.0.0:7000)
  TMEDIA_APP_PORT       local link to the SIP application (7001)
  TMEDIA_WATCHDOG_MS    reboot when no host polled for this long (5000)
  TMEDIA_FENCE_MS       give up the served interface when no host polled for this long
                        (2500): a unit cut off from both hosts must be silent on the VoIP
                        network before the host moves its address to the spare
  TMEDIA_DEADLOCK_MS    reboot when the SIP application's heartbeat stops this long (1500)
  TMEDIA_BOOT_DIR       where the boot record survives reboots (/var/lib/tmedia)
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
from .log import log as log_line
from .monitor import AppWatch, Watchdog
from .ports import Bond, unit_mac

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


class AppCounters:
    """The control agent's counters: the SIP application's, from its last heartbeat."""

    def __init__(self, board: "Board"):
        self.board = board

    def snapshot(self) -> dict:
        c = self.board.link.counters() if self.board.app is not None else {}
        out = {k: c.get(k, 0) for k in ("calls_active", "calls_total", "calls_answered", "calls_failed")}
        for k in ("rtp_packets", "rtp_packets_received", "rtp_sessions_active"):
            out[k] = c.get(k)
        return out


class Board:
    def __init__(self, env):
        self.env = dict(env)
        self.name = env.get("TMEDIA_NAME", "").strip()
        if not self.name:
            raise SystemExit("tmedia: bad configuration: TMEDIA_NAME is not set")
        self.log = partial(log_line, self.name)
        self.watchdog = Watchdog(_ms(env, "TMEDIA_WATCHDOG_MS", 5000))
        self.fence_s = _ms(env, "TMEDIA_FENCE_MS", 2500)
        self.appwatch = AppWatch(_ms(env, "TMEDIA_DEADLOCK_MS", 1500), startup=20.0)
        self.app_port = int(env.get("TMEDIA_APP_PORT", "7001"))
        self.link = AppLink(self.app_port)
        self.boot_dir = env.get("TMEDIA_BOOT_DIR", "/var/lib/tmedia")
        self.boot = self._record_boot()
        ips = [x.strip() for x in env.get("TMEDIA_PORT_IPS", "").split(",") if x.strip()]
        self.bond = Bond(unit_mac(self.name), log=self.log) if ips else None
        self.port_ips = tuple(ips)
        self.fixed = env.get("TMEDIA_SERVICE", "").strip()
        self._lock = threading.Lock()
        self.serves: Optional[str] = None      # unit served now, and its address
        self.address: Optional[str] = None
        self.wanted: tuple = (None, None)       # what the last `assume` asked for
        self.assigned_by: Optional[str] = None
        self.assumed_at: Optional[float] = None
        self.app: Optional[subprocess.Popen] = None
        self.fenced = False
        self.agent = ControlAgent(self.name, AppCounters(self), log=self.log,
                                  port=int(env.get("TMEDIA_CONTROL_PORT", "7000")),
                                  host=env.get("TMEDIA_CONTROL_IP", "0.0.0.0"), board=self)
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
        if self.app is not None:
            try:
                self.app.kill()
            except OSError:
                pass
        os._exit(REBOOT_EXIT)

    # --- what the control agent asks --------------------------------------------------
    def polled(self) -> None:
        self.watchdog.kick()

    def assume(self, unit: Optional[str], address: Optional[str], by: str) -> None:
        with self._lock:
            if (unit, address) != self.wanted:
                self.log(f"assume {unit or 'nothing (spare)'}{' at ' + address if address else ''} "
                         f"(asked by {by})")
            self.wanted, self.assigned_by = (unit, address), by

    def fields(self) -> dict:
        last = (self.boot.get("reboots") or [None])[-1]
        app = self.app
        return {"board": self.name, "serves": self.serves, "address": self.address,
                "spare": self.serves is None, "fenced": self.fenced,
                "assumed_at": self.assumed_at,
                "bond": self.bond.status() if self.bond else None,
                "boots": self.boot["boots"], "last_reboot": last,
                "watchdog": self.watchdog.status(),
                "app": None if app is None else {"pid": app.pid, "running": app.poll() is None,
                                                 "heartbeat": self.appwatch.last_hb is not None}}

    # --- the SIP application ----------------------------------------------------------
    def _start_app(self, unit: str, address: str) -> None:
        env = dict(self.env, TMEDIA_NAME=unit, TMEDIA_BOARD=self.name,
                   TMEDIA_SIP_IP=address.split("/")[0], TMEDIA_APP_PORT=str(self.app_port))
        self.app = subprocess.Popen([sys.executable, "-m", "emulator.tmedia.unit"], env=env)
        self.appwatch.started()
        self.log(f"SIP application for {unit} started (pid {self.app.pid}) on {address}")

    def _stop_app(self) -> None:
        app, self.app = self.app, None
        self.appwatch.stopped()
        if app is None:
            return
        app.terminate()            # hangs up its calls (BYE) and exits
        try:
            app.wait(timeout=3)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
        self.log(f"SIP application stopped (exit status {app.returncode})")

    def _serve(self, unit: Optional[str], address: Optional[str]) -> None:
        """Carry out an assignment: stop the application, move the address, start it."""
        if (unit, address) == (self.serves, self.address):
            return
        self._stop_app()
        self.agent.config = None     # accept calls until the engine configures the new unit
        if self.bond is not None:
            self.bond.set_addresses([address] if address else [])
        self.serves, self.address = unit, address
        self.assumed_at = time.time() if unit else None
        if unit:
            self._start_app(unit, address)

    # --- main loop --------------------------------------------------------------------
    def run(self) -> int:
        if self.bond is not None:
            self.bond.build(self.port_ips)
        if self.fixed:
            unit, address = self.fixed.split("=", 1)
            self.wanted = (unit, address if "/" in address else address + "/32")
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
            if self.bond is not None and self.bond.check() == "down" and self.serves:
                self.log("both VoIP ports down: unit down, giving up its interface")
                self.wanted = (None, None)
            self._fence()
            with self._lock:
                wanted = self.wanted
            if self.bond is not None and not self.bond.logic.up:
                wanted = (None, None)
            self._serve(*wanted)
            if self.app is not None and now >= next_tick:
                next_tick = now + TICK_S
                self.link.tick(self.agent.current_lease(), self.agent.admission())
            if self.link.drain() and self.app is not None:
                self.appwatch.heartbeat()
            verdict = self.appwatch.verdict(self.app.poll() if self.app is not None else None)
            if verdict:
                self.reboot(verdict)
            if self.watchdog.expired():
                self.reboot(f"watchdog: no host polled for {self.watchdog.timeout:g} s")
            time.sleep(LOOP_S)
        self.log("stopping")
        self._stop_app()
        self.agent.stop()
        return 0

    def _fence(self) -> None:
        """No host has polled for fence_s: give up the served interface (a host will
        have moved it to the spare), keep answering control (polls may come back)."""
        if self.fixed:
            return
        since = self.watchdog.status()["since_last_poll_s"]
        fenced = since is not None and since > self.fence_s
        if fenced and not self.fenced and self.serves:
            self.log(f"no poll for {since:.1f} s: giving up {self.serves}'s interface")
            with self._lock:
                self.wanted = (None, None)
        self.fenced = fenced


def main() -> int:
    return Board(os.environ).run()


if __name__ == "__main__":
    sys.exit(main())
