"""Effects seen without trusting the system's own API: processes read by `docker exec`
in the node (a killed application back with a new pid, by the service monitor), the
OAM API asked without a token on every route of its own schema (401 every time), and a
unit's boot record in its own file system (a reboot and its reason)."""
from __future__ import annotations

import json
import re
import time

import httpx

from . import verdict as vd
from .testbed import Testbed, TestbedError
from .util import wait_for


def app_pids(tb: Testbed, host: str, app: str) -> list[int]:
    """Pids of the host's application `app` (its command line: `app_runner <app>`)."""
    res = tb.container(host).exec_run(["pgrep", "-f", f"emulator.host.app_runner {app}$"])
    if res.exit_code not in (0, 1):
        raise TestbedError(f"pgrep on {host} failed: {res.output!r}")
    return [int(p) for p in res.output.decode().split()]


def restarted_check(tb: Testbed, host: str, app: str, old_pid: int | None, t_fault: float,
                    deadline_s: float = 10.0) -> vd.SubCheck:
    """The service monitor restarted the killed (or deadlocked) application: the old
    process is gone and a new one runs, seen in the host's process table."""
    if old_pid is None:
        return vd.unknown("restarted by the service monitor", "the fault recorded no pid")
    def replaced():
        pids = app_pids(tb, host, app)
        return pids if pids and old_pid not in pids else None
    try:
        pids = wait_for(replaced, deadline_s, f"{app} on {host} restarted")
    except TestbedError:
        pids = app_pids(tb, host, app)
        return vd.failed("restarted by the service monitor",
                         f"{app} on {host}: {'still pid ' + str(old_pid) if old_pid in pids else 'no process'}"
                         f" {deadline_s:.0f} s after the check began (processes {pids})")
    return vd.ok("restarted by the service monitor",
                 f"{app} on {host}: pid {old_pid} gone, new pid {pids[0]} "
                 f"(checked {time.time() - t_fault:.1f} s after the fault)", new_pid=pids[0])


def _routes(schema: dict) -> list[tuple[str, str]]:
    out = []
    for path, methods in schema.get("paths", {}).items():
        for method in methods:
            if method.upper() in ("GET", "POST", "PUT", "DELETE", "PATCH"):
                out.append((method.upper(), re.sub(r"\{[^}]+\}", "tbprobe", path)))
    return out


def unauthorized_routes(replies: dict[tuple[str, str], int], public=("/healthz",)) -> list[str]:
    """Routes that answered a request with no token otherwise than 401."""
    return [f"{m} {p} -> {code}" for (m, p), code in sorted(replies.items())
            if p not in public and not p.startswith(("/docs", "/openapi", "/redoc")) and code != 401]


def oam_auth_check(tb: Testbed, host: str) -> vd.SubCheck:
    """Every route of the host's OpenAPI schema refuses a request without the token (over
    ctrl-a, else ctrl-b: one control network may be the fault)."""
    errors = []
    for net in ("ctrl-a", "ctrl-b"):
        base = f"http://{tb.ip(host, net)}:8080"
        try:
            schema = httpx.get(f"{base}/openapi.json", timeout=3).json()
            replies = {(m, p): httpx.request(m, base + p, timeout=3, json={} if m in ("POST", "PUT", "PATCH")
                                             else None).status_code for m, p in _routes(schema)}
            break
        except (httpx.HTTPError, ValueError) as exc:
            errors.append(f"{net}: {exc}")
    else:
        return vd.unknown("OAM refuses requests without a token", f"{host}: {'; '.join(errors)}")
    if not replies:
        return vd.unknown("OAM refuses requests without a token", f"{host}: no route in its schema")
    bad = unauthorized_routes(replies)
    if bad:
        return vd.failed("OAM refuses requests without a token", f"{host}: " + "; ".join(bad[:6]))
    return vd.ok("OAM refuses requests without a token", f"{host}: {len(replies)} routes, all 401",
                 routes=len(replies))


def boot_record(tb: Testbed, board: str) -> dict:
    """The board's boot record (boots, reboots with reasons), from its own file system."""
    res = tb.container(board).exec_run(["cat", "/var/lib/tmedia/boot.json"])
    if res.exit_code != 0:
        raise TestbedError(f"no boot record on {board}: {res.output[:200]!r}")
    return json.loads(res.output)
