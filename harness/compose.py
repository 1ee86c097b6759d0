"""Finds the Compose tool: the v2 plugin (`docker compose`) or the standalone
`docker-compose` (1.29 on Debian bookworm), whichever the machine has."""
from __future__ import annotations

import functools
import shutil
import subprocess


@functools.lru_cache(maxsize=1)
def command() -> list[str]:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise SystemExit("neither `docker compose` (v2 plugin) nor `docker-compose` is installed: "
                     "install one (Debian: apt-get install docker-compose)")
