"""deadlock: SIGSTOP one Toolpack application (the service monitor's deadlock test)."""
from __future__ import annotations

from dataclasses import dataclass

from ..util import each
from ._base import CALL_MARGIN_S, Timers
from .kill_process import KillProcess


@dataclass
class Deadlock(KillProcess):
    """SIGSTOP one application: the service monitor must notice the missing heartbeats,
    kill and restart it. heal() makes sure nothing stays stopped."""
    kind = "deadlock"
    signal = "STOP"

    @property
    def name(self):
        return f"deadlock {self.app} on {self.host}"

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """Heartbeats stop; after deadlock the monitor kills and restarts it, then as a
        kill: deadlock + poll + margin = 0.5 + 0.1 + 0.6 = 1.2 s."""
        return t.deadlock_s + t.poll_s + CALL_MARGIN_S

    def heal(self) -> None:
        super().heal()   # wait for a new pid (or restart the host)
        self.tb.container(self.host).exec_run(["kill", "-CONT", str(self.pid)])

    @classmethod
    def sweep(cls, tb) -> None:
        """No process left stopped, in any container of the project."""
        def cont(c):
            c.reload()
            if c.status == "running":
                c.exec_run(["sh", "-c", "ps -eo pid=,stat= | awk '$2 ~ /^T/ {print $1}' "
                                        "| xargs -r kill -CONT"])
        each(tb.containers(), cont)
