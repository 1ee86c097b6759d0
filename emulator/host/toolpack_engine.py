"""toolpack_engine: loads the active configuration from the database (walking skeleton:
it tracks which configuration is active and how many routes it holds; pushing it to the
units comes with the configuration-reload issue)."""
from __future__ import annotations

import time

from . import state
from .db import Db
from .settings import Settings

APP = "toolpack_engine"


def main():
    s = Settings.from_env()
    db = Db.from_settings(s)
    while True:
        try:
            rows = db.run("SELECT name FROM configurations WHERE active")
            state.write("engine", {"config": rows[0]["name"] if rows else None,
                                   "db_server": db.server, "error": None, "updated": time.time()})
        except Exception as exc:
            state.write("engine", {"config": None, "db_server": None, "error": str(exc),
                                   "updated": time.time()})
        time.sleep(2.0)   # a period, not a wait for a condition


if __name__ == "__main__":
    main()
