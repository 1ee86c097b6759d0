"""The harness against an inventory: both Toolpack hosts reached over SSH, as real
machines are (keys generated at bring-up, host keys checked, no password), the rest of
the testbed through Docker. A slice of the matrix runs through that path, one operation
per kind of fault SSH must carry (at the light load): kill, SIGSTOP, a service stop, an nftables cut with its
heal and sweep, and a power-off through the inventory's power command. That the SSH path
was taken is read from the hosts' own sshd logs (through Docker, not the path under test)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import paramiko
import pytest

from harness.inventory import load, write_for
from harness.remote import SshNode
from harness.testbed import HOSTS, ROOT, log

SLICE = ("kill-master-gateway", "deadlock-master-gateway", "quit-master-service",
         "cut-master-networks", "power-off-master")


@pytest.fixture(scope="module")
def inventory(testbed):
    return write_for(testbed, testbed.dir / "inventory-ssh.yaml", ssh=HOSTS)


def sessions(tb, host) -> int:
    """Public-key logins in the host's sshd log, read through Docker."""
    c = next(c for c in tb.docker_containers() if c.labels["com.docker.compose.service"] == host)
    out = c.exec_run(["sh", "-c", "cat /var/log/sshd.log 2>/dev/null || true"]).output.decode()
    return out.count("Accepted publickey for root")


def test_a_host_over_ssh_takes_its_key_only_and_checks_its_host_key(testbed, inventory):
    inv = load(inventory)
    node = SshNode("host-a", inv.nodes["host-a"], inventory.parent)
    res = node.exec_run(["sh", "-c", "hostname; python -m emulator.host.ctl service status --json"])
    assert res.exit_code == 0, res.output
    assert res.output.decode().splitlines()[0] == "host-a"
    assert '"ok": true' in res.output.decode()        # the image's environment over SSH
    node.close()
    ssh = inv.nodes["host-a"].ssh
    with pytest.raises(paramiko.AuthenticationException):     # no password, ever
        c = paramiko.SSHClient()
        c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        c.connect(ssh.address, username="root", password="toolpack", allow_agent=False,
                  look_for_keys=False, timeout=3)
    c = paramiko.SSHClient()                                  # an unknown host key: refused
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        c.connect(ssh.address, username="root", key_filename=str(inventory.parent / ssh.key),
                  allow_agent=False, look_for_keys=False, timeout=3)


def test_a_slice_of_the_matrix_runs_with_the_hosts_reached_over_ssh(testbed, inventory, tmp_path):
    before = {h: sessions(testbed, h) for h in HOSTS}
    # the light load: what is tested here is the path the faults take, not the load
    env = dict(os.environ, TB_INVENTORY=str(inventory), TB_LOAD="light")
    env.pop("TB_SHARD", None)
    cmd = [sys.executable, "-m", "pytest", "scenarios/test_matrix.py", "-p", "no:cacheprovider",
           "-q", "-k", " or ".join(SLICE), f"--tb-project={testbed.project}", f"--tb-runs={tmp_path}"]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    status = {r["operation"]: r["status"] for r in results if r["operation"] in SLICE}
    after = {h: sessions(testbed, h) for h in HOSTS}
    log(f"matrix over SSH: {status}; SSH sessions per host {before} -> {after}")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert status == {op: "ok" for op in SLICE}, status
    for h in HOSTS:           # both hosts were master or slave at some point: both reached
        assert after[h] > before[h], (h, before, after)
