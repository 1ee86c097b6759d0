"""The host's role transitions as JSON lines, for the harness to read with `docker exec`
(a network cut does not hide them): `{"t", "host", "role", "epoch", "why"}`, one line per
transition, flushed at once.

The file is on the container's own file system (not the /run tmpfs), so it survives
restarts of the process and of the container. A process or container that dies while
active writes no closing line, so while active the writer also touches a liveness stamp
(the mtime of `<path>.alive`) every tick; whoever starts next (init at boot, or the
restarted sys_manager) closes the open interval with `{"role": "down", "t": <last
stamp>}`: a power-off's active interval ends when the host died, not when it came back.

Semantics of a restart of toolpack_sys_manager while active (docs: ARCHITECTURE.md,
"Roles observed three ways"): if it resumes the active role (role.json still says
active and the last stamp is younger than one lease), the interval continues (a line
`active` with why "resumed ..."): role.json never stopped saying active, the gateway kept
routing and the units' leases kept running. Otherwise the interval closes at the last
stamp."""
from __future__ import annotations

import json
import os
import time

DEFAULT_PATH = os.environ.get("TB_ROLE_LOG", "/var/lib/toolpack/roles.jsonl")
ACTIVE, DOWN = "active", "down"


def last_line(path: str) -> dict | None:
    """The last complete JSON line of the file (a torn last line is skipped), or None."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            tail = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    for raw in reversed(tail.splitlines()):
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict):
            return rec
    return None


class RoleLog:
    def __init__(self, host: str, path: str = DEFAULT_PATH, clock=time.time):
        self.host, self.path, self.clock = host, path, clock
        self.stamp_path = path + ".alive"

    def write(self, role: str, epoch: int, why: str, t: float | None = None) -> dict:
        rec = {"t": self.clock() if t is None else t, "host": self.host, "role": role,
               "epoch": epoch, "why": why}
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
        return rec

    def alive(self) -> None:
        """Called every tick while active: the stamp's mtime is the last time we were."""
        t = self.clock()
        try:
            os.utime(self.stamp_path, (t, t))
        except FileNotFoundError:
            os.makedirs(os.path.dirname(self.stamp_path) or ".", exist_ok=True)
            open(self.stamp_path, "a").close()
            os.utime(self.stamp_path, (t, t))

    def died_active(self) -> dict | None:
        """The previous run's last line if it left the host active (it died without a
        closing line), with `last_alive`: the later of its liveness stamp and that line."""
        last = last_line(self.path)
        if last is None or last.get("role") != ACTIVE:
            return None
        try:
            stamp = os.stat(self.stamp_path).st_mtime
        except FileNotFoundError:
            stamp = 0.0
        return {**last, "last_alive": max(float(last.get("t", 0.0)), stamp)}

    def close_dead(self, why: str) -> dict | None:
        """If the previous run died active: write its closing `down` line, stamped with its
        last liveness stamp. Returns the line written, or None."""
        prev = self.died_active()
        if prev is None:
            return None
        return self.write(DOWN, int(prev.get("epoch", 0)), why, t=prev["last_alive"])
