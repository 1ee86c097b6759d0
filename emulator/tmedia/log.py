"""One timestamped line per event on stdout: the unit's log as the harness collects it.

Kept apart so every module logs the same way (call events, lease changes, startup) and
a test can swap the sink."""
from __future__ import annotations

import sys
import threading
from datetime import datetime, timezone

_lock = threading.Lock()


def log(unit: str, msg: str) -> None:
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with _lock:
        sys.stdout.write(f"{stamp} {unit} {msg}\n")
        sys.stdout.flush()
