"""SshNode without a server (no Docker): the errors a caller of the Container API
expects (docker.errors.APIError, naming the node), the status of a node whose SSH port
is closed, the inventory's commands run here; the keys made at bring-up; the sshd
configuration (keys only, the image's environment)."""
import socket

import docker.errors
import paramiko
import pytest

from emulator import sshd
from harness.inventory import Node
from harness.remote import SshNode, make_keys


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def node(tmp_path, **kw):
    keys = make_keys(tmp_path / "ssh", ["127.0.0.2"])
    spec = {"role": "host", "reach": "ssh", "addresses": {"ctrl-a": "10.0.1.1", "ctrl-b": "10.0.2.1"},
            "ssh": {"address": "127.0.0.2", "port": closed_port(), "user": "root",
                    "key": str(keys["key"]), "known_hosts": str(keys["known_hosts"])}, **kw}
    return SshNode("host-a", Node.model_validate(spec), tmp_path)


def test_a_node_whose_ssh_port_is_closed_is_exited_and_exec_raises_like_docker(tmp_path):
    n = node(tmp_path)
    assert n.status == "exited"
    with pytest.raises(docker.errors.APIError, match=r"host-a: ssh connect \(root@127.0.0.2:\d+\): .*Unable to connect"):
        n.exec_run(["true"])
    with pytest.raises(docker.errors.APIError, match="cannot be paused"):
        n.pause()


def test_power_and_logs_are_the_inventorys_commands_run_here(tmp_path):
    mark = tmp_path / "powered"
    n = node(tmp_path, power_off=["sh", "-c", f"echo off-{{node}} > {mark}"],
             power_on=["sh", "-c", f"echo on >> {mark}"], logs=["echo", "since {since}"])
    n.kill()
    n.start()
    assert mark.read_text() == "off-host-a\non\n"
    assert n.logs(since=12.5) == b"since 12.500000\n"
    with pytest.raises(docker.errors.APIError, match="no `shutdown` command"):
        n.stop()
    bad = node(tmp_path, power_off=["false"], power_on=["true"])
    with pytest.raises(docker.errors.APIError, match="power_off.*false exit 1"):
        bad.kill()


def test_the_bring_up_keys(tmp_path):
    k = make_keys(tmp_path, ["10.0.1.11", "10.0.2.11"])
    assert oct(k["key"].stat().st_mode & 0o777) == "0o600"
    assert paramiko.Ed25519Key.from_private_key_file(str(k["key"])).get_name() == "ssh-ed25519"
    known = paramiko.HostKeys(str(k["known_hosts"]))
    host = paramiko.Ed25519Key.from_private_key_file(str(k["host_key"]))
    assert set(known.keys()) == {"10.0.1.11", "10.0.2.11"}
    assert known.lookup("10.0.1.11")["ssh-ed25519"] == host
    client = paramiko.Ed25519Key.from_private_key_file(str(k["key"]))
    assert k["authorized_keys"].read_text().split()[1] == client.get_base64()
    first = k["key"].read_bytes()
    assert make_keys(tmp_path, ["10.0.1.11"])["key"].read_bytes() != first   # new at each bring-up


def test_sshd_takes_keys_only_and_gives_sessions_the_images_environment():
    cfg = sshd.config({"PATH": "/opt/venv/bin:/usr/bin", "PYTHONPATH": "/opt/testbed", "HOME": "/root"})
    assert "PasswordAuthentication no" in cfg and "KbdInteractiveAuthentication no" in cfg
    assert "PermitRootLogin prohibit-password" in cfg
    assert "SetEnv PATH=/opt/venv/bin:/usr/bin PYTHONPATH=/opt/testbed\n" in cfg


class FakeSftpFile:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def seek(self, n):
        self.pos = n

    def read(self, n):
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class FakeSftp:
    """What fetch reads of paramiko's SFTPClient: open(path, mode); counts the bytes read."""
    def __init__(self, files):
        self.files, self.read_bytes = files, 0

    def open(self, path, mode):
        f = FakeSftpFile(self.files[path])
        orig = f.read

        def counted(n):
            out = orig(n)
            self.read_bytes += len(out)
            return out
        f.read = counted
        return f


def test_a_fetched_trace_is_read_only_by_what_it_grew_and_anew_when_written_again(tmp_path):
    local = tmp_path / "short.log"
    sftp = FakeSftp({"/r/short.log": b"line 1\n"})
    SshNode._fetch_file(sftp, "/r/short.log", 7, local)
    assert local.read_bytes() == b"line 1\nline 2\n"[:7] and sftp.read_bytes == 7
    sftp.files["/r/short.log"] = b"line 1\nline 2\n"          # SIPp appended a line
    SshNode._fetch_file(sftp, "/r/short.log", 14, local)
    assert local.read_bytes() == b"line 1\nline 2\n" and sftp.read_bytes == 14   # 7 new bytes
    SshNode._fetch_file(sftp, "/r/short.log", 14, local)                         # unchanged
    assert sftp.read_bytes == 14
    sftp.files["/r/short.log"] = b"new\n"                     # a new run wrote it again
    SshNode._fetch_file(sftp, "/r/short.log", 4, local)
    assert local.read_bytes() == b"new\n"


def test_the_sshd_config_serves_sftp_from_sshd_itself():
    assert "Subsystem sftp internal-sftp" in sshd.config({})
