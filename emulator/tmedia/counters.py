"""Call and media counters of a unit, written by the SIP stack and read by the control agent.

The SIP stack runs on sippy's reactor thread and the control agent on its own thread, so
the counters are behind a lock; `snapshot()` is what poll and status replies carry.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional


class Counters:
    def __init__(self):
        self._lock = threading.Lock()
        self.calls_active = 0      # answered calls not yet ended
        self.calls_total = 0       # INVITEs that started a call (new dialogs)
        self.calls_answered = 0    # calls that were connected (200 OK sent to the caller)
        self.calls_failed = 0      # calls that ended without being answered (refused, no
                                   # route, every route failed, cancelled by the caller)
        self.answered_by_path: dict = {}   # voice path -> calls answered on it
        # Media counters come from rtp.io (rtpproxy's "Ib" statistics), read on demand,
        # and the voice paths' states from the path monitor.
        self.rtp_stats: Optional[Callable[[], dict]] = None
        self.path_status: Optional[Callable[[], dict]] = None
        self.path_downs: Optional[Callable[[], dict]] = None   # path -> times declared down
        self.shed: Optional[Callable[[], int]] = None    # new calls refused for overload

    def call_started(self) -> None:
        with self._lock:
            self.calls_total += 1

    def call_answered(self, path=None) -> None:
        with self._lock:
            self.calls_active += 1
            self.calls_answered += 1
            if path is not None:
                self.answered_by_path[str(path)] = self.answered_by_path.get(str(path), 0) + 1

    def call_ended(self, answered: bool) -> None:
        with self._lock:
            if answered:
                self.calls_active -= 1
            else:
                self.calls_failed += 1

    def snapshot(self) -> dict:
        with self._lock:
            snap = {"calls_active": self.calls_active, "calls_total": self.calls_total,
                    "calls_answered": self.calls_answered, "calls_failed": self.calls_failed,
                    "calls_by_voice_path": dict(self.answered_by_path)}
        rtp = self.rtp_stats() if self.rtp_stats is not None else {}
        # rtp_packets: packets the relay forwarded (both directions, all calls so far);
        # None while the media relay has not reported yet.
        snap["rtp_packets"] = rtp.get("packets_transmitted")
        snap["rtp_packets_received"] = rtp.get("packets_received")
        snap["rtp_sessions_active"] = rtp.get("active_sessions")
        snap["voice_paths"] = self.path_status() if self.path_status is not None else {}
        snap["voice_path_downs"] = self.path_downs() if self.path_downs is not None else {}
        snap["calls_shed"] = self.shed() if self.shed is not None else 0
        return snap
