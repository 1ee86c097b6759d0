"""The seed's "verify that there are no errors": after an operation, the logs of every host
and unit container since the test began, as Docker keeps them (the containers' stdout and
stderr: the Toolpack service and its applications, MariaDB, the boards and their SIP
applications).

    scan(tb, since, expect=expected("kill_process", app="gateway")) -> SubCheck

- failed: a line with an error marker (a Python traceback, ` ERROR`, `CRITICAL`,
  MariaDB's `[ERROR]`), shown with its container (the first few; a traceback with its
  exception line), an event the operation does not cause (`unexpected`: a deadlock kill,
  a unit's reboot or fence), or an expected event missing from every log;
- unknown: a container's logs could not be read (and nothing failed in the others);
- ok: no error, every expected event present.

The expected events are the emulator's own log lines, matched as substrings (see
`EVENTS`); `allow` names error lines an operation causes by design, exactly, so that
nothing else is let through. The matcher (`find_errors`, `judge`) is pure.
"""
from __future__ import annotations

from .testbed import BOARDS, HOSTS, Testbed
from .util import each
from .verdict import SubCheck, failed, ok, unknown

CONTAINERS = HOSTS + BOARDS
ERROR_MARKERS = ("Traceback", " ERROR", "CRITICAL", "[ERROR]")
SHOWN = 5     # offending lines in the detail

# What the emulator logs for the events of an operation (the exact text of its lines).
EVENTS = {
    "handover": "toolpack_sys_manager: handing over to",      # the active host gives up
    "became_active": "-> active (epoch",                      # a sys_manager's new role
    "lease_released": "lease released by",                    # a unit, on a handover
    "lease_acquired": "lease acquired by",                    # a unit, after a release
    "app_crashed": "toolpack: crash {app}",                   # the service monitor saw it die
    "app_restarted": "toolpack: restart {app}",               # ... and started it again
    "app_deadlocked": "toolpack: deadlock {app}",             # no heartbeat: killed
    "dont_run": "toolpack: dont_run {app}",
    "run": "toolpack: run {app}",
    "service_quit": "toolpack: quit",
    "unit_configured": "configured by",                       # a unit took a configuration
}

# Error lines an operation causes by design, for `allow`: the backup MariaDB's replication
# reports the loss of its main at ERROR level (the main's server killed or shut down, its
# host powered off or cut), before the database agent promotes the backup.
MAIN_DB_LOST = ("Error reading packet from server: Lost connection to server",
                "Slave I/O: error reconnecting to master")
# ... and the main's semi-sync reports the loss of its backup (the backup's server killed,
# its host powered off or cut) when the dump thread cannot flush the next event to it.
BACKUP_DB_LOST = ("Semi-sync master failed on net_flush() before waiting for slave reply",)


# Events that are faults of the system itself when the operation did not cause them: the
# service monitor killing an application it took for deadlocked (a busy machine starving
# a healthy one is a false failover), and a unit's board rebooting (its calls are lost).
# Not error lines, so the markers above miss them.
FALSE_DEADLOCK = "toolpack: deadlock "
UNIT_REBOOT = "REBOOT: "
UNIT_FENCE = "no poll for "          # a unit no host polled gives up its interface
SLOW_TICK = "slow tick"              # toolpack_sys_manager: its loop stalled
STARVED = "toolpack: starved "       # silent but runnable: not killed (BUSY_S)


def unexpected(kind: str, unit_level: bool) -> tuple[str, ...]:
    """The events that fault `kind` does not cause: a deadlock kill belongs to the
    deadlock operation only, a unit's reboot or fence to the unit faults (`unit_level`,
    the fault registry's)."""
    out = () if kind == "deadlock" else (FALSE_DEADLOCK,)
    return out if unit_level else out + (UNIT_REBOOT, UNIT_FENCE)


# What a failed run prints of the nodes' logs beside its verdict: the events that explain a
# refusal or a lost call. A CI run keeps only the printed output.
NOTABLE = (FALSE_DEADLOCK, STARVED, UNIT_REBOOT, UNIT_FENCE, SLOW_TICK,
           EVENTS["app_crashed"].format(app=""), EVENTS["handover"], EVENTS["became_active"],
           "-> standby (epoch")


def notable_events(tb: Testbed, since: float) -> list[str]:
    """Every host's and unit's NOTABLE lines since `since`, in time order (Docker's
    timestamp), each with its container; a log that could not be read says so."""
    logs, unreadable = read_logs(tb, since, list(tb.server_hosts) + list(BOARDS))
    out = [f"{c}: {line.strip()[:200]}" for c, text in logs.items()
           for line in text.splitlines() if any(e in line for e in NOTABLE)]
    return sorted(out, key=lambda e: e.split(": ", 1)[1]) + \
        [f"{c}: logs not read ({why})" for c, why in unreadable.items()]


def expected(kind: str, app: str = "") -> list[str]:
    """The events a matrix fault kind itself leaves in the logs, on the host it hits; add
    switchover_events() when the operation switches over."""
    ev = {k: v.format(app=app) for k, v in EVENTS.items()}
    return {
        "kill_process": [ev["app_crashed"], ev["app_restarted"]],
        "deadlock": [ev["app_deadlocked"], ev["app_restarted"]],
        "service_quit": [ev["service_quit"]],
    }.get(kind, [])


def switchover_events(graceful: bool) -> list[str]:
    """A switchover: the new active host's role; a graceful one (the old master still
    runs: an application failed or quit) also hands over, and the units say their lease
    was released and acquired by the new host. A host that died lets the leases lapse,
    which a unit logs as "expired" or as "taken over" depending on which comes first:
    neither is required."""
    if graceful:
        return [EVENTS["handover"], EVENTS["lease_released"], EVENTS["lease_acquired"],
                EVENTS["became_active"]]
    return [EVENTS["became_active"]]


def _traceback_end(lines: list[str], i: int) -> str:
    """The exception line that closes the traceback starting at lines[i]: the first line
    after it that is not a frame (frames are indented, under the timestamp)."""
    for line in lines[i + 1:i + 200]:
        body = line.split(" ", 1)[1] if line[:4].isdigit() and " " in line else line
        if body and not body.startswith((" ", "\t")) and not body.startswith("Traceback"):
            return body.strip()
    return "(traceback cut off)"


def find_errors(text: str, allow: tuple[str, ...] = (), forbid: tuple[str, ...] = ()) -> list[str]:
    """The lines of one container's log with an error marker or a `forbid` string; a
    traceback is one entry, its first line with its exception. A line containing an
    `allow` string is skipped."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if any(f in line for f in forbid):
            out.append(f"unexpected: {line.strip()}")
            continue
        if not any(m in line for m in ERROR_MARKERS) or any(a in line for a in allow):
            continue
        if "Traceback" in line:
            end = _traceback_end(lines, i)
            if any(a in end for a in allow):
                continue
            line = f"{line.strip()} ... {end}"
        out.append(line.strip())
    return out


def judge(logs: dict[str, str], unreadable: dict[str, str], expect=(), allow=(),
          name: str = "logs", forbid=()) -> SubCheck:
    """The sub-check from the logs read (container -> text) and those that could not be
    (container -> why)."""
    bad = [(c, line) for c, text in logs.items()
           for line in find_errors(text, tuple(allow), tuple(forbid))]
    missing = [e for e in expect if not any(e in text for text in logs.values())]
    data = {"errors": len(bad), "missing": missing, "unreadable": sorted(unreadable),
            "containers": sorted(logs)}
    if bad:
        shown = "; ".join(f"{c}: {line[:300]}" for c, line in bad[:SHOWN])
        more = f" (and {len(bad) - SHOWN} more)" if len(bad) > SHOWN else ""
        miss = f"; expected but missing: {missing}" if missing else ""
        return failed(name, f"{len(bad)} error line(s): {shown}{more}{miss}", **data)
    if unreadable:
        why = "; ".join(f"{c}: {w}" for c, w in sorted(unreadable.items()))
        return unknown(name, f"logs not read: {why}"
                       + (f"; expected but not found in the others: {missing}" if missing else ""),
                       **data)
    if missing:
        return failed(name, f"expected but missing from every log: {missing}", **data)
    return ok(name, f"no error in {len(logs)} containers"
              + (f", all {len(expect)} expected events present" if expect else ""), **data)


def read_logs(tb: Testbed, since: float, containers=CONTAINERS) -> tuple[dict, dict]:
    """(container -> log text since `since`, container -> why it could not be read)."""
    got, unreadable = {}, {}

    def read(name):            # side by side: a busy host's log is megabytes
        try:
            raw = tb.container(name).logs(since=since, timestamps=True, stdout=True, stderr=True)
            got[name] = raw.decode(errors="replace")
        except Exception as exc:   # no such container, daemon error: the scan cannot decide
            unreadable[name] = f"{type(exc).__name__}: {exc}"
    each(containers, read)
    return {n: got[n] for n in containers if n in got}, unreadable


def scan(tb: Testbed, since: float, expect: list[str] = (), allow: list[str] = (),
         forbid: tuple[str, ...] = ()) -> SubCheck:
    """Every host's (the database hosts' too) and unit container's logs since `since`
    (epoch seconds): no error line and no `forbid` event, every `expect` string present in
    some container's log."""
    logs, unreadable = read_logs(tb, since, tb.server_hosts + BOARDS)
    return judge(logs, unreadable, list(expect), tuple(allow), forbid=tuple(forbid))
