"""host_shutdown: shut the master or the slave down (`docker stop`)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..testbed import TestbedError
from ._base import CALL_MARGIN_S, Timers
from .host_power_off import HostPowerOff


@dataclass
class HostShutdown(HostPowerOff):
    """Shut the server down: `docker stop` (SIGTERM to the host's init, which quits the
    Toolpack service gracefully, then MariaDB). Runs in the background so the harness
    watches the switchover while the host goes down; an error of the stop is raised by
    heal()."""
    thread: threading.Thread | None = field(default=None, init=False)
    error: Exception | None = field(default=None, init=False)

    kind = "host_shutdown"

    @property
    def name(self):
        return f"shutdown {self.host}"

    @classmethod
    def max_switchover_s(cls, t: Timers) -> float:
        """init first quits the service, which releases the leases and sends takeover:
        as a service quit, poll + margin = 0.1 + 0.6 = 0.7 s."""
        return t.poll_s + CALL_MARGIN_S

    def _stop(self, c):
        try:
            c.stop(timeout=30)
        except Exception as exc:    # raised by heal(): a thread cannot raise to the test
            self.error = exc

    def inject(self) -> float:
        c = self.tb.container(self.host)
        self.thread = threading.Thread(target=self._stop, args=(c,), daemon=True)
        self._act("shutdown (docker stop)", self.thread.start)
        return self.injected_at

    def heal(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=40)
        super().heal()
        if self.error is not None:
            raise TestbedError(f"docker stop of {self.host} failed: {self.error}") from self.error
