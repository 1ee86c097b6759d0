"""The harness against an inventory: the Toolpack hosts, the TMedia boards and the SIPp
agents reached over SSH, as real machines are (keys generated at bring-up, host keys
checked, no password), only the VoIP switch through Docker. A slice of the matrix runs
through that path, one operation per kind of fault SSH must carry (at the light load):
kill, SIGSTOP, a service stop, nftables cuts with their heal and sweep (a host's, and a
unit's own control network, the one its SSH session uses), a power-off through the
inventory's power command (a host and a unit), a unit's port set down (with the capture
of its gratuitous ARP running detached), and SIPp on the agents with its files copied by
SFTP. That the SSH path was taken is read from each node's own sshd log and the agents'
work directory (through Docker, not the path under test)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import paramiko
import pytest

from harness.inventory import load, write_for
from harness.remote import SshNode
from harness.testbed import AGENTS, BOARDS, HOSTS, ROOT, log

SLICE = ("kill-master-gateway", "deadlock-master-gateway", "quit-master-service",
         "cut-master-networks", "power-off-master", "unit-power-off", "unit-bond-port-down",
         "unit-ctrl-a-cut")
OVER_SSH = HOSTS + BOARDS + AGENTS
WORK_DIR = "/var/tmp/ha-testbed"     # the agents' own directory (from_testbed), not /work


@pytest.fixture(scope="module")
def inventory(testbed):
    return write_for(testbed, testbed.dir / "inventory-ssh.yaml", ssh=OVER_SSH)


def docker_node(tb, name):
    return next(c for c in tb.docker_containers() if c.labels["com.docker.compose.service"] == name)


def sessions(tb, node) -> int:
    """Public-key logins in the node's sshd log, read through Docker."""
    out = docker_node(tb, node).exec_run(
        ["sh", "-c", "cat /var/log/sshd.log 2>/dev/null || true"]).output.decode()
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
    before = {n: sessions(testbed, n) for n in OVER_SSH}
    # the light load: what is tested here is the path the faults take, not the load
    env = dict(os.environ, TB_INVENTORY=str(inventory), TB_LOAD="light")
    env.pop("TB_SHARD", None)
    cmd = [sys.executable, "-m", "pytest", "scenarios/test_matrix.py", "-p", "no:cacheprovider",
           "-q", "-k", " or ".join(SLICE), f"--tb-project={testbed.project}", f"--tb-runs={tmp_path}"]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    status = {r["operation"]: r["status"] for r in results if r["operation"] in SLICE}
    after = {n: sessions(testbed, n) for n in OVER_SSH}
    log(f"matrix over SSH: {status}; SSH sessions per node {before} -> {after}")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert status == {op: "ok" for op in SLICE}, status
    # every host was master or slave, every board served or stood by, every agent ran
    # SIPp at some point: each was reached over SSH
    for n in OVER_SSH:
        assert after[n] > before[n], (n, before, after)
    # SIPp ran in the agents' own directory, and what the harness judged is what it wrote
    # there (copied back by SFTP)
    for agent, name in (("sipp-uac", "power-off-master-uac-tmedia-1"),
                        ("sipp-uas", "power-off-master-uas")):
        remote = docker_node(testbed, agent).exec_run(["cat", f"{WORK_DIR}/{name}/short.log"])
        assert remote.exit_code == 0, (agent, remote.output[:300])
        assert remote.output.count(b"INVITE") > 10
        assert (testbed.dir / "sipp" / name / "short.log").read_bytes() == remote.output
