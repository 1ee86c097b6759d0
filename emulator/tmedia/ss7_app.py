"""The unit's SS7 process: `python -m emulator.ss7.spread` for the unit a board serves,
when the SS7 configuration the engine pushed (the `ss7` field of `configure`, from the
configuration database: host/ss7_config.py) names that unit among the linkset's units.
The board starts it with the SIP applications, stops it with them, starts it again if it
dies (as the unit's on-board monitor would), and restarts it when a reload changes the
SS7 configuration. Nothing runs before a push with SS7, nor when it has none (the
default testbed).

The pushed configuration: {"linkset", "opc", "dpc", "units": [[unit, VoIP address] in
link order (SLC 0, 1; the first is preferred as the active)], "groups": {unit: [first
CIC, last CIC]}, "sip_port": the SIP-ISUP interworking's port on the unit's address (each
unit's ISUP trunk group as a gateway route's destination; its calls go to the unit's SIP
stack on port 5060), "group_names": {unit: trunk group}}. A board keeps the last one it
was pushed across assignments: a spare that takes a unit over starts its node at once.

Environment (the board's: deployment, not configuration):
  TMEDIA_SS7_PORT       the link's TCP port on the unit's address (3565)
  TMEDIA_SS7_MATE_PORT  the mate connection's port, on the first unit's address (3566)
  TMEDIA_SS7_STATUS     where the node writes its status (/tmp/tmedia-ss7.json)
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
from ..ss7 import MAX_CIC, MAX_PC


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    v = env.get(name, "").strip() or str(default)
    if not v.isdigit() or not 0 < int(v) < 65536:
        raise SystemExit(f"tmedia: bad configuration: {name}={v!r}: not a port")
    return int(v)


@dataclass(frozen=True)
class Ss7Config:
    units: tuple[tuple[str, str], ...]      # (unit, address) in link order
    opc: int
    dpc: int
    groups: str                             # "tmedia-1=1-30,tmedia-2=31-60" (the node's --groups)
    port: int = 3565
    mate_port: int = 3566
    status_path: str = "/tmp/tmedia-ss7.json"
    control_path: str = "/tmp/tmedia-ss7-control.json"
    sip_port: Optional[int] = None

    @classmethod
    def from_push(cls, ss7, env: Mapping[str, str] = {}) -> Optional["Ss7Config"]:
        """The `ss7` field of a `configure` (None: no SS7), checked field by field:
        ValueError names what is wrong (the control agent answers it to the engine)."""
        if ss7 is None:
            return None
        if not isinstance(ss7, dict):
            raise ValueError("'ss7' must be an object or null")
        units = ss7.get("units")
        if not isinstance(units, list) or len(units) != 2 or \
                not all(isinstance(u, list) and len(u) == 2 and all(isinstance(x, str) for x in u)
                        for u in units) or units[0][0] == units[1][0]:
            raise ValueError("'ss7.units' must be two [unit, address] pairs, two units")
        for _, ip in units:
            try:
                ipaddress.IPv4Address(ip)
            except ValueError:
                raise ValueError(f"'ss7.units': {ip!r} is not an IPv4 address") from None
        for key, top in (("opc", MAX_PC), ("dpc", MAX_PC), ("sip_port", 65535)):
            v = ss7.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top:
                raise ValueError(f"'ss7.{key}' must be a whole number 0..{top}")
        groups = ss7.get("groups")
        names = [u for u, _ in units]
        if not isinstance(groups, dict) or set(groups) != set(names) or not all(
                isinstance(r, list) and len(r) == 2 and all(type(c) is int for c in r)
                and 1 <= r[0] <= r[1] <= MAX_CIC for r in groups.values()):
            raise ValueError(f"'ss7.groups' must give each of {names} a CIC range "
                             f"[first, last] within 1..{MAX_CIC}")
        return cls(tuple((u, ip) for u, ip in units), ss7["opc"], ss7["dpc"],
                   ",".join(f"{u}={groups[u][0]}-{groups[u][1]}" for u in names),
                   _port(env, "TMEDIA_SS7_PORT", 3565), _port(env, "TMEDIA_SS7_MATE_PORT", 3566),
                   env.get("TMEDIA_SS7_STATUS", "/tmp/tmedia-ss7.json"),
                   env.get("TMEDIA_SS7_CONTROL", "/tmp/tmedia-ss7-control.json"),
                   ss7["sip_port"] or None)

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
    def __init__(self, cfg: Optional[Ss7Config], log: Callable[[str], None],
                 env: Mapping[str, str] = {}):
        self.cfg, self.log, self.env = cfg, log, env
        self.pushed = ...           # the last `ss7` pushed (... : none yet)
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

    def configure(self, pushed, serving: Optional[str]) -> None:
        """The `ss7` of the engine's latest `configure` (checked by the control agent).
        A change stops the node and starts it with the new configuration (a reload that
        changes the linkset, its point codes or the CICs); the same one again changes
        nothing."""
        if pushed == self.pushed:
            return
        try:
            cfg = Ss7Config.from_push(pushed, self.env)
        except ValueError as exc:     # the control agent refused it already
            self.log(f"SS7 configuration ignored: {exc}")
            return
        first, self.pushed = self.pushed is ..., pushed
        if cfg == self.cfg:
            return
        self.log(f"SS7 configuration {'loaded' if first else 'changed'}: " +
                 (f"linkset {pushed.get('linkset')} {cfg.opc}-{cfg.dpc}, links "
                  f"{', '.join(u for u, _ in cfg.units)}, CICs {cfg.groups}" if cfg else "none"))
        self.stop()
        self.cfg = cfg
        if serving:
            self.start(serving)

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
