"""CPU priority of the HA control plane: the processes whose timers are the HA rule.

toolpack_sys_manager (heartbeats, polls: the lease) and a unit's board (lease, fence,
watchdog, bond) run their loops every 10-20 ms against timers of a few hundred ms.
On a busy machine (a unit rebooting: four interpreters starting at once) a loop at
normal priority was late by more than a lease, and a healthy host lost its units: a
false switchover. As HA daemons of the field do (corosync runs real-time, keepalived
raises its VRRP process), they run at a higher priority (nice -10; needs CAP_SYS_NICE,
which the testbed's containers have) and what they start goes back to normal.
"""
from __future__ import annotations

import os
from typing import Callable

CONTROL_NICE = -10


def raise_priority(log: Callable[[str], None]) -> int:
    """Run this process (and the threads it starts after) at CONTROL_NICE; returns the
    nice value it runs at (unchanged when not permitted, which is logged)."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, CONTROL_NICE)
    except OSError as exc:
        log(f"runs at normal CPU priority: cannot set nice {CONTROL_NICE} ({exc.strerror}; "
            f"the container needs CAP_SYS_NICE)")
    return os.getpriority(os.PRIO_PROCESS, 0)


def normal(argv: list[str]) -> list[str]:
    """argv that starts a program at normal priority from a raised process (nice adds to
    the current value: -10 + 10 = 0)."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    return ["nice", "-n", str(-current), *argv] if current < 0 else list(argv)
