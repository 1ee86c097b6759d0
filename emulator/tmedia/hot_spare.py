"""A hot spare: SIP applications started before the board is given a unit.

A cold start of one SIP application (the interpreter, sippy, the rtp.io media relay's
library) costs 0.2-0.4 s of CPU; a unit's three stacks took 1 s to answer on an idle
machine and 2 to 4.8 s at the production load, most of a unit's failover to the spare.
So a board keeps `size` application processes started and waiting
(`python -m emulator.tmedia.unit --wait`: every import done, nothing bound). When it is
given a unit, each interface takes a waiting process, which reads its assignment (the
environment variables a cold start would get) as one JSON line on its stdin and then
runs exactly as a cold-started application. With none waiting (more interfaces than
the pool, or a process that died), the interface starts cold.

The pool is refilled only while the board serves nothing, so refilling never competes
for CPU with the stacks it has just started. A waiting process exits when its stdin
closes: with the board, whatever way the board ends.
"""
from __future__ import annotations

import json
import subprocess
import time
from typing import Callable, Mapping, Optional

RETRY_S = 5.0


class HotSpare:
    def __init__(self, argv: list[str], env: Mapping[str, str], size: int,
                 log: Callable[[str], None] = print):
        self.argv, self.env, self.size, self.log = list(argv), dict(env), size, log
        self.waiting: list[subprocess.Popen] = []
        self.not_before = 0.0     # after a waiting process died: no restart loop

    def fill(self, clock: Callable[[], float] = time.monotonic) -> None:
        """Start processes until `size` are waiting (a dead one is replaced, not sooner
        than RETRY_S after it died)."""
        dead = [p for p in self.waiting if p.poll() is not None]
        if dead:
            self.waiting = [p for p in self.waiting if p.poll() is None]
            self.log(f"hot spare: waiting SIP application exited ({', '.join(f'pid {p.pid} status {p.returncode}' for p in dead)})")
            self.not_before = clock() + RETRY_S
        if clock() < self.not_before:
            return
        while len(self.waiting) < self.size:
            p = subprocess.Popen(self.argv + ["--wait"], env=self.env, stdin=subprocess.PIPE)
            self.waiting.append(p)
            self.log(f"hot spare: SIP application waiting (pid {p.pid})")

    def take(self, assignment: Mapping[str, str]) -> Optional[subprocess.Popen]:
        """A waiting process, now running with `assignment`; None when none is left."""
        while self.waiting:
            p = self.waiting.pop(0)
            if p.poll() is not None:
                continue
            try:
                p.stdin.write((json.dumps(dict(assignment)) + "\n").encode())
                p.stdin.close()
            except OSError:          # it died meanwhile: the next one
                p.kill()
                p.wait()
                continue
            return p
        return None

    def status(self) -> dict:
        pids = [p.pid for p in self.waiting if p.poll() is None]
        return {"size": self.size, "waiting": len(pids), "pids": pids}

    def close(self) -> None:
        for p in self.waiting:
            try:
                p.stdin.close()      # EOF: a waiting process exits at once
            except OSError:
                pass
        for p in self.waiting:
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.waiting = []
