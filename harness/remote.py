"""Nodes reached over SSH (paramiko): the part of the Docker SDK's Container API the
harness uses (exec_run, also detached, status, reload, kill, start, stop, restart, logs),
so a fault, a probe or a check runs the same commands on a real machine as in a
container. For SIPp on an agent node (harness/sipp.py, SshExecutor): a command whose
exit status is awaited on its own channel (`spawn`), and files copied both ways by SFTP
(`put`, `fetch`: only what a growing trace added since the last fetch).

What SSH cannot do is done by the inventory's commands, run on the harness's machine:
power off (`kill`) and on (`start`), a graceful `shutdown` (`stop`), and the node's log.
`pause` has no SSH equivalent and raises. Errors are docker.errors.APIError, as the
Docker SDK raises for a container that is not running, so callers handle both alike.

Host keys are checked (an unknown or changed key is refused) and only keys log in; the
testbed's keys are generated at bring-up (`make_keys`)."""
from __future__ import annotations

import shlex
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import docker.errors
import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CONNECT_TIMEOUT = 3.0     # a node that is up answers SSH on its own segment at once
EXEC_TIMEOUT = 300.0      # the longest command the harness runs (ctl mysql start: a clone)
PROBE_TIMEOUT = 0.5       # TCP connect to the SSH port: up or down (same segment)
STATUS_MAX_AGE = 0.5


class ExecResult(NamedTuple):
    exit_code: int
    output: bytes


class SshNode:
    """One inventory node reached over SSH. One connection, opened on first use and again
    after it broke (a node powered off and on)."""

    def __init__(self, name: str, node, inventory_dir: Path | None = None):
        self.name = self.id = name
        self.node = node
        self.labels = {"com.docker.compose.service": name}
        self.attrs = {"NetworkSettings": {"Networks": {}}}
        base = inventory_dir or Path.cwd()
        self.key = (base / node.ssh.key.expanduser()).resolve()
        self.known_hosts = (base / node.ssh.known_hosts.expanduser()).resolve()
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()
        self.commands = 0          # commands run over SSH
        self._status, self._probed = "unknown", 0.0

    # ---- connection -------------------------------------------------------------------
    def _error(self, what: str, exc: Exception | str) -> docker.errors.APIError:
        return docker.errors.APIError(f"{self.name}: {what} ({self.node.ssh.user}@"
                                      f"{self.node.ssh.address}:{self.node.ssh.port}): {exc}")

    def _connect(self) -> paramiko.SSHClient:
        with self._lock:
            t = self._client.get_transport() if self._client else None
            if t is not None and t.is_active():
                return self._client
            client = paramiko.SSHClient()
            client.load_host_keys(str(self.known_hosts))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                client.connect(self.node.ssh.address, port=self.node.ssh.port,
                               username=self.node.ssh.user, key_filename=str(self.key),
                               timeout=CONNECT_TIMEOUT, banner_timeout=CONNECT_TIMEOUT,
                               auth_timeout=CONNECT_TIMEOUT, allow_agent=False,
                               look_for_keys=False)
            except (OSError, paramiko.SSHException) as exc:
                client.close()
                raise self._error("ssh connect", exc) from exc
            client.get_transport().set_keepalive(5)
            self._client = client
            return client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def management(self) -> tuple[str, int] | None:
        """(the harness's address as the node sees it, the SSH port): a network cut keeps
        this session (a real machine's management path) so the cut can be healed."""
        t = self._connect().get_transport()
        return t.sock.getsockname()[0], self.node.ssh.port

    # ---- the Container API the harness uses --------------------------------------------
    @staticmethod
    def _line(cmd, workdir: str | None) -> str:
        line = cmd if isinstance(cmd, str) else shlex.join(str(a) for a in cmd)
        return f"cd {shlex.quote(workdir)} && {line}" if workdir else line

    def exec_run(self, cmd, workdir: str | None = None, detach: bool = False,
                 **_ignored) -> ExecResult:
        line = self._line(cmd, workdir)
        if detach:          # as `docker exec -d`: started, not waited for (a capture)
            line = f"setsid sh -c {shlex.quote(line)} </dev/null >/dev/null 2>&1 &"
        for attempt in (1, 2):     # a connection that broke since its last use: once more
            client = self._connect()
            try:
                chan = client.get_transport().open_session(timeout=CONNECT_TIMEOUT)
                chan.set_combine_stderr(True)        # one stream, as docker exec gives
                chan.settimeout(EXEC_TIMEOUT)
                chan.exec_command(line)
                out = b""
                while True:
                    data = chan.recv(65536)
                    if not data:
                        break
                    out += data
                code = chan.recv_exit_status()
                chan.close()
                self.commands += 1
                return ExecResult(code, out)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                self.close()
                if attempt == 2:
                    raise self._error(f"exec {line[:80]!r}", exc) from exc
        raise AssertionError("unreachable")

    def spawn(self, cmd, workdir: str | None = None) -> paramiko.Channel:
        """Start `cmd` on a channel of its own and return at once; the channel's exit
        status is the command's (`exit_status_ready`, `recv_exit_status`)."""
        line = self._line(cmd, workdir)
        try:
            chan = self._connect().get_transport().open_session(timeout=CONNECT_TIMEOUT)
            chan.exec_command(line)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise self._error(f"spawn {line[:80]!r}", exc) from exc
        self.commands += 1
        return chan

    def _sftp(self) -> paramiko.SFTPClient:
        try:
            return self._connect().open_sftp()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise self._error("sftp", exc) from exc

    def put(self, local: Path, remote: str) -> None:
        """Copy the file `local` to `remote` (its directory made first)."""
        res = self.exec_run(["mkdir", "-p", str(PurePosixPath(remote).parent)])
        if res.exit_code != 0:
            raise self._error(f"mkdir for {remote}", res.output.decode(errors="replace"))
        sftp = self._sftp()
        try:
            sftp.put(str(local), remote)
        finally:
            sftp.close()

    def fetch(self, remote: str, local: Path) -> None:
        """Mirror the file or directory `remote` into `local`: a file only by what it grew
        since the last fetch (SIPp's traces are appended to while it runs), anew when it
        shrank (written again); a missing one is no error (not written yet)."""
        sftp = self._sftp()
        try:
            try:
                st = sftp.stat(remote)
            except FileNotFoundError:
                return
            if stat.S_ISDIR(st.st_mode):
                local.mkdir(parents=True, exist_ok=True)
                for e in sftp.listdir_attr(remote):
                    if stat.S_ISREG(e.st_mode):
                        self._fetch_file(sftp, f"{remote}/{e.filename}", e.st_size,
                                         local / e.filename)
            else:
                local.parent.mkdir(parents=True, exist_ok=True)
                self._fetch_file(sftp, remote, st.st_size, local)
        except OSError as exc:
            raise self._error(f"fetch {remote}", exc) from exc
        finally:
            sftp.close()

    @staticmethod
    def _fetch_file(sftp, remote: str, size: int, local: Path) -> None:
        have = local.stat().st_size if local.exists() else 0
        if size == have:
            return
        if size < have:
            have = 0
        with sftp.open(remote, "rb") as src, open(local, "r+b" if have else "wb") as dst:
            src.seek(have)
            dst.seek(have)
            dst.write(src.read(size - have))
            dst.truncate()

    def reload(self) -> None:
        """running when the node's SSH port accepts a connection, else exited."""
        try:
            with socket.create_connection((self.node.ssh.address, self.node.ssh.port), PROBE_TIMEOUT):
                self._status = "running"
        except OSError:
            self._status = "exited"
            self.close()
        self._probed = time.monotonic()

    @property
    def status(self) -> str:
        """As of the last reload(), probed again when that is older than STATUS_MAX_AGE
        (a Docker container object's status is as of its listing, too)."""
        if time.monotonic() - self._probed > STATUS_MAX_AGE:
            self.reload()
        return self._status

    def _local(self, what: str, argv: list[str] | None, timeout: float = 120) -> bytes:
        if argv is None:
            raise self._error(what, f"the inventory gives no `{what}` command for {self.name}")
        argv = [a.replace("{node}", self.name) for a in argv]
        res = subprocess.run(argv, capture_output=True, timeout=timeout)
        if res.returncode != 0:
            raise self._error(what, f"{shlex.join(argv)} exit {res.returncode}: "
                                    f"{res.stderr.decode(errors='replace').strip()[:300]}")
        return res.stdout

    def kill(self, signal=None) -> None:
        self.close()
        self._local("power_off", self.node.power_off)

    def start(self) -> None:
        self._local("power_on", self.node.power_on)

    def stop(self, timeout: int = 10) -> None:
        self.close()
        self._local("shutdown", self.node.shutdown, timeout=timeout + 60)

    def restart(self, timeout: int = 10) -> None:
        if self.node.shutdown is not None:
            self.stop(timeout)
        else:
            self.kill()
        self.start()

    def pause(self) -> None:
        raise self._error("pause", "a machine reached over SSH cannot be paused")

    unpause = pause

    def logs(self, since=None, timestamps=True, **_ignored) -> bytes:
        if self.node.logs is None:
            return b""
        since_s = f"{float(since.timestamp() if hasattr(since, 'timestamp') else since or 0):.6f}"
        return self._local("logs", [a.replace("{since}", since_s) for a in self.node.logs])


# ---- keys of the testbed (bring-up) ----------------------------------------------------
def make_keys(out: Path, addresses: list[str]) -> dict[str, Path]:
    """Generate the testbed's SSH keys into `out`: the harness's client key and its
    authorized_keys, one host key for the nodes, and known_hosts naming it for every
    address. Ed25519, new at every bring-up; nothing has a password."""
    out.mkdir(parents=True, exist_ok=True)

    def write(name, data: bytes, mode: int) -> Path:
        p = out / name
        p.write_bytes(data)
        p.chmod(mode)
        return p

    def pair(comment: str):
        k = Ed25519PrivateKey.generate()
        private = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                  serialization.NoEncryption())
        public = k.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH) + f" {comment}\n".encode()
        return private, public

    client, client_pub = pair("ha-testbed harness")
    host, host_pub = pair("ha-testbed node")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    paths = {"key": write("client_ed25519", client, 0o600),
             "authorized_keys": write("authorized_keys", client_pub, 0o644),
             "host_key": write("host_ed25519", host, 0o600),
             "host_key_pub": write("host_ed25519.pub", host_pub, 0o644)}
    entry = host_pub.decode().split()[:2]
    paths["known_hosts"] = write("known_hosts", (f"# the testbed's nodes, {stamp}\n" + "".join(
        f"{a} {entry[0]} {entry[1]}\n" for a in addresses)).encode(), 0o644)
    return paths
