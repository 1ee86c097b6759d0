"""Small JSON state files under RUN_DIR: how the applications of one host see each other.

Each file has one writer; readers tolerate a missing or half-written file (atomic rename
makes the latter impossible, but a reader may start before the writer)."""
from __future__ import annotations

import json
import os
import time

from .settings import RUN_DIR


def path(name: str) -> str:
    return os.path.join(RUN_DIR, name + ".json")


def write(name: str, data: dict) -> None:
    os.makedirs(RUN_DIR, exist_ok=True)
    tmp = path(name) + f".{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path(name))


def read(name: str, default: dict | None = None) -> dict:
    try:
        with open(path(name)) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return {} if default is None else default


def log(app: str, msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {app}: {msg}", flush=True)
