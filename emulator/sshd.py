"""The node's SSH server, for a harness that reaches it as it would a real machine
(an inventory node with `reach: ssh`). Started by the node's init when the bring-up
mounted keys at /etc/tb-ssh (authorized_keys, host_ed25519) and sshd is installed:
public keys only, no passwords. Sessions get the image's PATH and PYTHONPATH (the
`docker exec` environment), so the same commands work over both paths."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

KEYS = Path("/etc/tb-ssh")
RUN = Path("/run/tb-ssh")
SSHD = "/usr/sbin/sshd"
LOG = "/var/log/sshd.log"


def config(env: dict) -> str:
    keep = " ".join(f"{k}={env[k]}" for k in ("PATH", "PYTHONPATH", "PYTHONUNBUFFERED") if env.get(k))
    return "\n".join([
        "Port 22",
        f"HostKey {RUN}/host_ed25519",
        f"AuthorizedKeysFile {RUN}/authorized_keys",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        f"PidFile {RUN}/sshd.pid",
        # SFTP in sshd itself (no sftp-server binary needed): the harness copies an
        # agent's SIPp scenario there and its traces back
        "Subsystem sftp internal-sftp",
        # the harness keeps one connection a node: every SIPp it runs on an agent is a
        # session of its own, beside the copies and probes (sshd's default of 10 refused
        # the heal's callers starting beside the main load's: "no more sessions")
        "MaxSessions 64",
        "LogLevel INFO",
        *([f"SetEnv {keep}"] if keep else []),
        ""])


def start() -> subprocess.Popen | None:
    """sshd in the foreground as a child of init, or None when not configured here."""
    if not (KEYS / "authorized_keys").exists() or not Path(SSHD).exists():
        return None
    RUN.mkdir(mode=0o700, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)     # sshd's privilege separation
    for name in ("authorized_keys", "host_ed25519"):
        shutil.copyfile(KEYS / name, RUN / name)           # sshd wants them 0600, root's
        os.chmod(RUN / name, 0o600)
    (RUN / "sshd_config").write_text(config(dict(os.environ)))
    return subprocess.Popen([SSHD, "-D", "-E", LOG, "-f", str(RUN / "sshd_config")])


if __name__ == "__main__":
    # a node with no init of ours (the SIPp agents): start sshd and leave it to PID 1
    proc = start()
    print(f"sshd: {'started (pid %d)' % proc.pid if proc else 'not configured here'}", flush=True)
