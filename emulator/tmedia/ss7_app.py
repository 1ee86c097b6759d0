"""The unit's SS7 process: `python -m emulator.ss7.spread` for the unit a board serves,
when the configuration names that unit among the SS7 units (the board starts it with
the SIP applications, stops it with them, and starts it again if it dies, as the unit's
on-board monitor would). Unset, nothing runs: the default testbed has no SS7.

Environment (the board's):
  TMEDIA_SS7_UNITS      "tmedia-1=IP,tmedia-2=IP": the units that end the linkset's links,
                        in link order (SLC 0, 1), with the VoIP address each one's link
                        and mate connection use; the first is preferred as the active
  TMEDIA_SS7_PC         "OWN:FAR": the system's and the far end's point codes (1001:2002)
  TMEDIA_SS7_GROUPS     ISUP trunk groups by unit, "tmedia-1=1-30,tmedia-2=31-60"
  TMEDIA_SS7_PORT       the link's TCP port on the unit's address (3565)
  TMEDIA_SS7_MATE_PORT  the mate connection's port, on the first unit's address (3566)
  TMEDIA_SS7_STATUS     where the node writes its status (/tmp/tmedia-ss7.json)
  TMEDIA_SS7_SIP_PORT   the SIP-ISUP interworking's port on the unit's address (each unit's
                        ISUP trunk group as a gateway route's destination; its calls go to
                        the unit's SIP stack on port 5060); empty: no interworking, the
                        active answers the far end's IAMs itself
  TMEDIA_SS7_CONTROL    where the board writes the served unit's SS7 stack flag from its
                        configuration, which the node reads (/tmp/tmedia-ss7-control.json)
"""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from ..priority import normal


@dataclass(frozen=True)
class Ss7Config:
    units: tuple[tuple[str, str], ...]      # (unit, address) in link order
    opc: int
    dpc: int
    groups: str
    port: int
    mate_port: int
    status_path: str
    control_path: str = "/tmp/tmedia-ss7-control.json"
    sip_port: Optional[int] = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Optional["Ss7Config"]:
        raw = env.get("TMEDIA_SS7_UNITS", "").strip()
        if not raw:
            return None

        def bad(name, why):
            return SystemExit(f"tmedia: bad configuration: {name}={env.get(name, '')!r}: {why}")
        units = []
        for part in raw.split(","):
            unit, _, ip = part.partition("=")
            try:
                ipaddress.IPv4Address(ip.strip())
            except ValueError:
                raise bad("TMEDIA_SS7_UNITS", "expected UNIT=IPv4,UNIT=IPv4") from None
            units.append((unit.strip(), ip.strip()))
        if len(units) != 2 or units[0][0] == units[1][0]:
            raise bad("TMEDIA_SS7_UNITS", "two units, one link each")
        own, _, far = env.get("TMEDIA_SS7_PC", "1001:2002").partition(":")
        if not (own.isdigit() and far.isdigit() and int(own) < 1 << 14 and int(far) < 1 << 14):
            raise bad("TMEDIA_SS7_PC", "expected OWN:FAR, 14-bit point codes")
        groups = env.get("TMEDIA_SS7_GROUPS", "").strip()
        if not all(f"{u}=" in groups for u, _ in units):
            raise bad("TMEDIA_SS7_GROUPS", "a trunk group for each SS7 unit")
        ports = []
        for name, default in (("TMEDIA_SS7_PORT", "3565"), ("TMEDIA_SS7_MATE_PORT", "3566"),
                              ("TMEDIA_SS7_SIP_PORT", "")):
            v = env.get(name, "").strip() or default
            if v and (not v.isdigit() or not 0 < int(v) < 65536):
                raise bad(name, "not a port")
            ports.append(int(v) if v else None)
        return cls(tuple(units), int(own), int(far), groups, ports[0], ports[1],
                   env.get("TMEDIA_SS7_STATUS", "/tmp/tmedia-ss7.json"),
                   env.get("TMEDIA_SS7_CONTROL", "/tmp/tmedia-ss7-control.json"), ports[2])

    def argv(self, unit: str) -> Optional[list[str]]:
        """The node's command line for `unit`, None when it ends no link."""
        names = [u for u, _ in self.units]
        if unit not in names:
            return None
        slc = names.index(unit)
        ip, first_ip = self.units[slc][1], self.units[0][1]
        mate = ["--mate-listen", f"{ip}:{self.mate_port}"] if slc == 0 else \
            ["--mate-connect", f"{first_ip}:{self.mate_port}"]
        return [sys.executable, "-m", "emulator.ss7.spread", "--name", unit,
                "--mate", names[1 - slc], "--opc", str(self.opc), "--dpc", str(self.dpc),
                "--slc", str(slc), "--link-listen", f"{ip}:{self.port}", *mate,
                "--groups", self.groups, *(["--preferred"] if slc == 0 else []),
                "--status", self.status_path, "--control", self.control_path,
                *(["--sip", f"{ip}:{self.sip_port}", "--sip-stack", f"{ip}:5060"]
                  if self.sip_port else [])]


class Ss7Process:
    def __init__(self, cfg: Optional[Ss7Config], log: Callable[[str], None]):
        self.cfg, self.log = cfg, log
        self.unit: Optional[str] = None
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self.started_at = 0.0
        self.enabled = True         # the served unit's SS7 stack, as last configured

    def set_enabled(self, enabled: bool) -> None:
        """The served unit's SS7 stack flag (the board's configuration), written where the
        node reads it: disabled, new calls on the unit's trunk group are refused."""
        if self.cfg is None or enabled == self.enabled:
            return
        self.enabled = enabled
        self._write_control()
        self.log(f"SS7 stack {'enabled' if enabled else 'disabled'} by the configuration")

    def _write_control(self) -> None:
        tmp = f"{self.cfg.control_path}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump({"ss7_enabled": self.enabled}, f)
            os.replace(tmp, self.cfg.control_path)
        except OSError as exc:
            self.log(f"SS7 control file not written: {exc}")

    def start(self, unit: str) -> None:
        argv = self.cfg.argv(unit) if self.cfg else None
        if argv is None:
            return
        self.unit = unit
        try:
            os.remove(self.cfg.status_path)      # an earlier node's: not this one's
        except OSError:
            pass
        self._write_control()                    # the node starts with the current flag
        self.proc = subprocess.Popen(normal(argv))
        self.starts += 1
        self.started_at = time.monotonic()
        self.log(f"SS7 node of {unit} started (pid {self.proc.pid})")

    RESTART_S = 1.0

    def check(self) -> None:
        """Started again when it died (the on-board monitor's restart), at most once a
        RESTART_S (a node that cannot start is not started in a loop)."""
        proc = self.proc
        if proc is not None and proc.poll() is not None \
                and time.monotonic() - self.started_at >= self.RESTART_S:
            self.log(f"SS7 node of {self.unit} exited ({proc.returncode}): started again")
            self.start(self.unit)

    def stop(self, kill: bool = False) -> None:
        proc, self.proc, self.unit = self.proc, None, None
        if proc is None:
            return
        if kill:
            proc.kill()
            return
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.log(f"SS7 node stopped (exit status {proc.returncode})")

    def status(self) -> Optional[dict]:
        proc = self.proc        # once: the board's stop() may clear it meanwhile (a poll
        if self.cfg is None or proc is None:   # read it twice and raised on None)
            return None
        try:
            with open(self.cfg.status_path) as f:
                st = json.load(f)
        except (OSError, ValueError):
            st = {}
        return {"pid": proc.pid, "running": proc.poll() is None,
                "starts": self.starts, **st}
