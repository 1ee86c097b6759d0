"""The SS7 side of the system (two units' nodes, python -m emulator.ss7.spread) and the
far end (python -m emulator.ss7.peer) as processes of this machine on 127.0.0.1: what
tests/test_ss7_units_processes.py and bench/ss7.py run, before the testbed's containers
carry them. Each process logs to its own file in `work`; the nodes write their status
as JSON there."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOP = "127.0.0.1"
PC_SYS, PC_FAR = 1001, 2002
UNITS = ("tmedia-1", "tmedia-2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOP, 0))
        return s.getsockname()[1]


def _run(work: Path, name: str, module: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=(work / f"{name}.log").open("w"),
                            text=True)


class LocalSs7:
    """Two units' nodes (tmedia-1 preferred) with `cics` circuits each, and far-end runs."""

    def __init__(self, work: Path, cics: int = 16, proving_s: float = 0.2):
        self.work, self.cics, self.proving_s = Path(work), cics, proving_s
        self.work.mkdir(parents=True, exist_ok=True)
        self.links = [free_port(), free_port()]
        self.mate = free_port()
        self.groups = f"tmedia-1=1-{cics},tmedia-2={cics + 1}-{2 * cics}"
        self.procs: dict[str, subprocess.Popen] = {}

    def status_file(self, unit: str) -> Path:
        return self.work / f"{unit}.json"

    def status(self, unit: str) -> dict:
        try:
            return json.loads(self.status_file(unit).read_text())
        except (OSError, ValueError):      # not written yet
            return {}

    def start_unit(self, unit: str) -> subprocess.Popen:
        i = UNITS.index(unit)
        self.status_file(unit).unlink(missing_ok=True)
        mate_arg = ["--mate-listen" if i == 0 else "--mate-connect", f"{LOOP}:{self.mate}"]
        p = _run(self.work, unit, "emulator.ss7.spread", "--name", unit, "--mate", UNITS[1 - i],
                 "--opc", str(PC_SYS), "--dpc", str(PC_FAR), "--slc", str(i),
                 "--link-listen", f"{LOOP}:{self.links[i]}", *mate_arg, "--groups", self.groups,
                 *(["--preferred"] if i == 0 else []), "--proving", str(self.proving_s),
                 "--answer-delay", "0.05", "--status", str(self.status_file(unit)))
        self.procs[unit] = p
        return p

    def far_end(self, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
        """A far-end run placing or answering calls (peer.py's options after the links);
        returns it and its trace file."""
        trace = self.work / f"{name}.jsonl"
        p = _run(self.work, name, "emulator.ss7.peer", "--opc", str(PC_FAR), "--dpc", str(PC_SYS),
                 "--cics", f"1-{2 * self.cics}", "--link", f"connect:{LOOP}:{self.links[0]}",
                 "--link", f"connect:{LOOP}:{self.links[1]}", "--proving", str(self.proving_s),
                 "--trace", str(trace), *args)
        self.procs[name] = p
        return p, trace

    def kill(self, name: str) -> None:
        """SIGKILL: the process ends with no word to anyone (its sockets closed by the kernel)."""
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait(5)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def calls_of(trace: Path) -> list[dict]:
    return [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
