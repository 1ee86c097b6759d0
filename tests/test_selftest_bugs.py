"""The known HA bugs of `make selftest` (bench/bugs): at least 8, each a patch that
still applies to the tree, with a header naming the promise it breaks and matrix
operations that exist. Whether each is caught is the benchmark's job (minutes per bug)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from selftest import BUGS, parse  # noqa: E402

from scenarios.matrix import load  # noqa: E402

PATCHES = sorted(BUGS.glob("*.patch"))


def test_at_least_eight_bugs_one_per_promise():
    bugs = [parse(p) for p in PATCHES]
    assert len(bugs) >= 8
    assert len({b.promise for b in bugs}) >= 8, "two bugs break the same promise"


@pytest.mark.parametrize("patch", PATCHES, ids=[p.stem for p in PATCHES])
def test_bug_applies_and_names_existing_operations(patch, tmp_path):
    bug = parse(patch)
    ops = {op.id for op in load()}
    assert bug.catches and set(bug.catches) <= ops, set(bug.catches) - ops
    subprocess.run(f"git -C {ROOT} archive HEAD | tar -x -C {tmp_path}", shell=True, check=True)
    # the working tree's version of the patched files (the patch must fit what is tested)
    for f in {line[6:].strip() for line in patch.read_text().splitlines() if line.startswith("+++ b/")}:
        (tmp_path / f).write_text((ROOT / f).read_text())
    res = subprocess.run(["git", "apply", "--check", str(patch)], cwd=tmp_path,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
