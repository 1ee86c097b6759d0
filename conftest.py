# The harness is a pytest plugin; loading it here makes `pytest` in this repo use it.
pytest_plugins = ["harness.plugin"]

import os

# tests/variants/ needs the external-db variant's testbed: collected only in a run of that
# variant (`make test` runs one after the main run: TB_VARIANT=external-db)
collect_ignore = [] if os.environ.get("TB_VARIANT") == "external-db" else ["tests/variants"]
