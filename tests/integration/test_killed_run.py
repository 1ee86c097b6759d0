"""A killed run heals. A harness process injects one fault of each kind and is SIGKILLed
at once, so nothing of its own ever heals it; then `make heal` runs (the same command a
user types). What is left behind is looked for in the containers themselves, never in
the harness's view: a container stopped or paused, an nftables table of the harness in
any family, a VoIP port down, a process stopped (state T). The counts per fault kind go
to runs/latest (killed_run.json) and the log."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import docker
import pytest

from harness.faults import NFT_TABLE, REGISTRY, heal_all, restore_placement
from harness.faults.bond_port_silent import TABLE as SILENT_TABLE
from harness.testbed import ROOT, log
from harness.util import wait_for

# one fault of every kind, as the matrix writes it
SPECS = {
    "host_power_off": {"kind": "host_power_off", "target": "master"},
    "host_shutdown": {"kind": "host_shutdown", "target": "slave"},
    "kill_process": {"kind": "kill_process", "target": "master", "app": "gateway"},
    "deadlock": {"kind": "deadlock", "target": "master", "app": "gateway"},
    "network_cut": {"kind": "network_cut", "target": "slave", "nets": ["ctrl-a", "ctrl-b"]},
    "mysql_kill": {"kind": "mysql_kill", "target": "slave"},
    "mysql_shutdown": {"kind": "mysql_shutdown", "target": "slave"},
    "service_quit": {"kind": "service_quit", "target": "slave"},
    "unit_power_off": {"kind": "unit_power_off", "target": "tmedia-2"},
    "voip_ports_down": {"kind": "voip_ports_down", "target": "tmedia-2"},
    "bond_port_down": {"kind": "bond_port_down", "target": "tmedia-2"},
    "bond_port_silent": {"kind": "bond_port_silent", "target": "tmedia-2"},
    "voice_path_cut": {"kind": "voice_path_cut", "target": "tmedia-2", "path": 102},
    "unit_ctrl_cut": {"kind": "unit_ctrl_cut", "target": "tmedia-2", "nets": ["ctrl-a"]},
    "unit_app_crash": {"kind": "unit_app_crash", "target": "tmedia-2"},
    "unit_unpolled": {"kind": "unit_unpolled", "target": "tmedia-2"},
}

# The harness that is killed: it injects and then waits to be killed (never heals).
CHILD = """
import json, sys, time
from harness.faults import from_spec
from harness.testbed import Testbed
tb = Testbed(sys.argv[1])
master = tb.master()
slave = tb.slave()
fault = from_spec(tb, json.loads(sys.argv[2]), master, slave)
fault.inject()
print("injected", fault.name, flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module", autouse=True)
def original_placement(testbed):
    """A unit fault moves tmedia-2 to the spare: later tests find the units at home."""
    yield
    restore_placement(testbed)


# the ss7 variant's kinds need its SS7 nodes and ss7-peer, absent here: ss7_crash leaves
# nothing behind (the board starts the node again), ss7_link_cut leaves ss7-peer's
# nftables table, which network_cut's sweep removes from every container (tested here)
VARIANT_KINDS = {"ss7_crash", "ss7_link_cut"}


def test_every_fault_kind_is_in_the_killed_run_test():
    assert set(SPECS) | VARIANT_KINDS == set(REGISTRY), set(REGISTRY) ^ (set(SPECS) | VARIANT_KINDS)


def leftovers(tb) -> list[str]:
    """Everything a fault can leave behind, read from the containers."""
    left = []
    for c in tb.containers():
        try:
            left += _left_in(c)
        except docker.errors.APIError as exc:
            # a board rebooting right now (a crashed SIP application reboots it): Docker
            # refuses an exec until it runs again; read it once it does
            if exc.status_code != 409:
                raise
            wait_for(lambda: c.reload() or c.status == "running", 60,
                     f"{c.name} running again after its restart")
            left += _left_in(c)
    return left


def _left_in(c) -> list[str]:
    c.reload()
    name = c.labels.get("com.docker.compose.service", c.name)
    if c.status != "running":
        return [f"{name}: container {c.status}"]
    tables = c.exec_run(["nft", "list", "tables"]).output.decode()
    left = [f"{name}: nftables {line.strip()}" for line in tables.splitlines()
            if line.split()[-1:] and line.split()[-1] in (NFT_TABLE, SILENT_TABLE)]
    procs = c.exec_run(["ps", "-eo", "stat=,pid=,args="]).output.decode()
    left += [f"{name}: stopped process {line.strip()}" for line in procs.splitlines()
             if line.strip().startswith("T")]
    if name.startswith("tmedia-"):
        for port in ("vp1", "vp2"):
            link = c.exec_run(["ip", "-o", "link", "show", port]).output.decode()
            flags = link.partition("<")[2].partition(">")[0].split(",")
            if "UP" not in flags:
                left.append(f"{name}: port {port} down ({link.strip()[:80]})")
    return left


@pytest.mark.parametrize("kind", list(SPECS))
def test_a_run_killed_in_a_fault_leaves_nothing_after_make_heal(testbed, run_dir, kind):
    heal_all(testbed)
    testbed.wait_healthy(90, quiet=True)
    assert leftovers(testbed) == []          # the test starts clean
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", CHILD, testbed.project, json.dumps(SPECS[kind])],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = ""
    try:
        for line in child.stdout:            # its log lines, then: injected <fault>
            if line.startswith("injected"):
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    injected = line.startswith("injected")
    during = leftovers(testbed)
    heal = subprocess.run(["make", "heal", f"PROJECT={testbed.project}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    after = leftovers(testbed)
    log(f"killed in {kind}: {line.strip()}; left while killed {len(during)}, after make heal {len(after)}"
        + (f": {after}" if after else ""))
    path = run_dir / "killed_run.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[kind] = {"fault": line.strip()[len("injected "):], "left_while_killed": during,
                     "left_after_heal": after, "heal_exit": heal.returncode,
                     "heal_output": (heal.stdout + heal.stderr)[-3000:] if heal.returncode else ""}
    path.write_text(json.dumps(results, indent=2) + "\n")
    assert injected, (line, child.stderr.read())
    assert heal.returncode == 0, heal.stdout[-2000:] + heal.stderr[-2000:]
    assert after == [], after
