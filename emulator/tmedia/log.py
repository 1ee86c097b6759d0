"""One timestamped line per event on stdout: the unit's log as the harness collects it.

Kept apart so every module logs the same way (call events, lease changes, startup) and
a test can swap the sink.

The caller only stamps and queues the line; a thread of its own writes it. stdout is a
pipe to the container runtime, and while dockerd is busy (a container starting beside
it) that pipe can fill and a write block. Written from the SIP reactor or the board's
loop, that can freeze the unit (likely what happened when a unit's log went silent for
3 s beside a host's boot, and its pending route requests then timed out together).
What is queued at exit is written before the process ends (atexit; a process that
leaves by os._exit calls flush() first, as the board's reboot does); a SIGKILL loses
it, as it would lose a buffered write."""
from __future__ import annotations

import atexit
import queue
import sys
import threading
from datetime import datetime, timezone

EXIT_DRAIN_S = 5.0       # at exit, how long a blocked stdout may hold the process back

_lines: queue.SimpleQueue = queue.SimpleQueue()
_writer: threading.Thread | None = None
_start_lock = threading.Lock()


def log(unit: str, msg: str) -> None:
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    _lines.put(f"{stamp} {unit} {msg}\n")
    if _writer is None:
        _start()


def _start() -> None:
    global _writer
    with _start_lock:
        if _writer is None:
            _writer = threading.Thread(target=_write, name="log-writer", daemon=True)
            _writer.start()
            atexit.register(_drain)


def _write() -> None:
    broken = False                        # stdout closed: lines are dropped, never piled up
    while (line := _lines.get()) is not None:
        if broken:
            continue
        try:
            # one write a line: the board and its SIP applications share this pipe, and
            # only a write under PIPE_BUF (4 kB) is never interleaved with another's
            sys.stdout.write(line)
            sys.stdout.flush()
        except (OSError, ValueError):
            broken = True


def flush() -> None:
    """Write out what is queued, then return (the writer is gone after this: for a
    process about to leave by os._exit, which runs no atexit)."""
    _drain()


def _drain() -> None:
    _lines.put(None)
    if _writer is not None:
        _writer.join(EXIT_DRAIN_S)
