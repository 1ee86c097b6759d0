# The harness is a pytest plugin; loading it here makes `pytest` in this repo use it.
pytest_plugins = ["harness.plugin"]

import os
from pathlib import Path

# tests/variants/test_<variant>_*.py need that variant's testbed: each is collected only in
# a run of its variant (`make test` runs the external-db one after the main run:
# TB_VARIANT=external-db)
_slug = os.environ.get("TB_VARIANT", "").replace("-", "_")
collect_ignore = [str(p.relative_to(Path(__file__).parent))
                  for p in sorted((Path(__file__).parent / "tests" / "variants").glob("test_*.py"))
                  if not _slug or not p.name.startswith(f"test_{_slug}_")]
