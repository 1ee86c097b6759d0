"""DockerExecutor's command plumbing, without Docker.

A fake Docker SDK client runs every "exec" on this machine, so the real
wrapper (pid file, output redirect), readiness probe (/proc), control socket
(bash /dev/udp) and signals are exercised exactly as they would run inside the
sipp container.
"""
import shutil
import subprocess
import time

import pytest

from tools import needs

from harness.sipp import DockerExecutor, LocalExecutor, SippLoad, SippUas, _bound, _poll_until
from test_sipp_parse import _free_udp_base  # tests/ is on sys.path (no package)


class FakeAPI:
    def __init__(self):
        self.created, self.procs = {}, {}

    def exec_create(self, container, cmd, workdir=None, stdin=False, tty=False):
        exec_id = f"exec{len(self.created)}"
        self.created[exec_id] = (container, cmd, workdir)
        return {"Id": exec_id}

    def exec_start(self, exec_id, detach=False):
        assert detach
        _, cmd, workdir = self.created[exec_id]
        self.procs[exec_id] = subprocess.Popen(cmd, cwd=workdir)

    def exec_inspect(self, exec_id):
        rc = self.procs[exec_id].poll()
        return {"Running": rc is None, "ExitCode": rc}


class FakeContainer:
    id = "c0ffee"

    def __init__(self):
        self.runs = []

    def exec_run(self, cmd, workdir=None):
        self.runs.append(cmd)
        r = subprocess.run(cmd, cwd=workdir, capture_output=True)
        return r.returncode, r.stdout + r.stderr


class FakeClient:
    def __init__(self):
        self.api = FakeAPI()


def test_bound_joins_proc_tables():
    net = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
           "  12: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2\n")
    assert _bound(0x13C4, net, "lrwx 3 -> socket:[4242]\n")
    assert not _bound(0x13C4, net, "lrwx 3 -> socket:[999]\n")
    assert not _bound(5061, net, "lrwx 3 -> socket:[4242]\n")


@needs("sipp", "Debian sip-tester")
@pytest.mark.skipif(shutil.which("bash") is None,
                    reason="bash needed")
def test_docker_executor_plumbing(tmp_path):
    b = _free_udp_base(11)
    client, container = FakeClient(), FakeContainer()
    # host_dir and container_dir are the same directory here (no bind mount needed)
    dex = DockerExecutor(container, tmp_path, str(tmp_path), client=client)
    with SippUas(dex, "127.0.0.1", port=b, media_port=b + 2, control_port=b + 9) as uas:
        (_, cmd, workdir), = client.api.created.values()
        assert cmd[:2] == ["sh", "-c"] and cmd[4] == "sipp" and workdir == str(tmp_path / "uas")
        with SippLoad(LocalExecutor(tmp_path), f"127.0.0.1:{b}", "127.0.0.1", port=b + 1,
                      media_port=b + 6, control_port=b + 10, rate=10, hold_s=0.2,
                      calls=2, recv_timeout_s=3.0) as load:
            assert load.wait()
        uas.stop(grace_s=5)           # "q" through bash's /dev/udp inside the "container"
        assert not uas.running
    assert any(c[0] == "bash" and "/dev/udp/127.0.0.1" in c[2] for c in container.runs)
    assert not any(c[0] == "sh" and "kill" in c[2] for c in container.runs)  # q was enough
    assert (tmp_path / "uas" / "sipp.pid").read_text().strip().isdigit()
    assert [c.outcome for c in load.calls(far_end=uas)] == ["completed"] * 2


@needs("sipp", "Debian sip-tester")
def test_docker_executor_sigterm_when_calls_stay_open(tmp_path):
    b = _free_udp_base(11)
    client, container = FakeClient(), FakeContainer()
    dex = DockerExecutor(container, tmp_path, str(tmp_path), client=client)
    uas = SippUas(dex, "127.0.0.1", port=b, media_port=b + 2, control_port=b + 9).start()
    with SippLoad(LocalExecutor(tmp_path), f"127.0.0.1:{b}", "127.0.0.1", port=b + 1,
                  media_port=b + 6, control_port=b + 10, rate=10, hold_s=30,
                  calls=1, recv_timeout_s=3.0) as load:
        # wait for the far end to answer: the leg is then open until its BYE
        assert _poll_until(lambda: any(c.answer_t for c in uas.calls()), time.monotonic() + 5)
        uas.stop(grace_s=0.5)         # "q" waits for the open leg: SIGTERM follows
        assert not uas.running
        load.stop(grace_s=0)
    assert any(c[0] == "sh" and "kill -s TERM" in c[2] for c in container.runs)
    (leg,) = uas.calls()
    assert (leg.outcome, leg.ended) == ("dropped", False)
