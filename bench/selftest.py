"""`make selftest`: the testbed shows its own teeth.

bench/bugs/*.patch are known HA bugs, each a small patch to the reference system, one for
each kind of HA promise the system makes. For each bug this applies the patch to a
scratch copy of the committed tree, builds that copy's images under a tag of their own,
brings up a testbed of its own, runs the matrix operations that should catch the bug, and
tears it all down. A bug is caught when at least one of its operations is not `ok`. The
unpatched tree is run first on the union of those operations, and must pass: otherwise a
"catch" could be the testbed failing on its own.

Each patch starts with a header that `git apply` skips:

    # bug: a service monitor that never restarts a crashed application
    # promise: Application Level (1+1): crashed applications are restarted
    # catches: kill-slave-tboamapp kill-master-gateway

    .venv/bin/python bench/selftest.py [--bug NAME ...] [--skip-baseline]

Minutes per bug (image build, bring-up, the operations): a benchmark, not `make test`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUGS = ROOT / "bench" / "bugs"
PY = sys.executable


@dataclass
class Bug:
    name: str
    path: Path | None       # None: the unpatched baseline
    what: str
    promise: str
    catches: list[str]


def parse(path: Path) -> Bug:
    head = {}
    for line in path.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(":")
        head[key.strip()] = value.strip()
    missing = {"bug", "promise", "catches"} - head.keys()
    if missing:
        raise SystemExit(f"{path}: header needs {sorted(missing)} (lines '# key: value')")
    return Bug(path.stem, path, head["bug"], head["promise"], head["catches"].split())


def log(msg: str) -> None:
    print(f"[selftest {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_one(bug: Bug, ops: list[str], n: int) -> dict:
    """Scratch copy, patch, images, testbed, the operations; the statuses per operation."""
    scratch = Path(tempfile.mkdtemp(prefix=f"tb-selftest-{bug.name}-"))
    tag, project = f"st{n}", f"st{n}"
    env = {**os.environ, "TB_TAG": tag, "TAG": tag, "TB_PROJECT": project, "CI": "1",
           "PYTHONPATH": str(scratch)}
    t0 = time.monotonic()
    try:
        subprocess.run(f"git -C {ROOT} archive HEAD | tar -x -C {scratch}", shell=True, check=True)
        wheels = ROOT / "images" / ".wheelhouse"
        if wheels.exists():     # the same wheels: no download per bug
            shutil.copytree(wheels, scratch / "images" / ".wheelhouse", copy_function=os.link)
        if bug.path is not None:
            subprocess.run(["git", "apply", "--verbose", str(bug.path)], cwd=scratch, check=True,
                           capture_output=True)
        runs = scratch / "runs"
        sel = " or ".join(ops)
        log(f"{bug.name}: running {', '.join(ops)}")
        p = subprocess.run([PY, "-m", "pytest", "scenarios", "-k", sel, "-q", "-p", "no:cacheprovider",
                            f"--tb-runs={runs}", "--tb-project", project], cwd=scratch, env=env,
                           capture_output=True, text=True)
        (ROOT / "runs").mkdir(exist_ok=True)
        (ROOT / "runs" / f"selftest-{bug.name}.log").write_text(p.stdout + p.stderr)
        results = json.loads(next(runs.glob("*/results.json")).read_text()) \
            if list(runs.glob("*/results.json")) else []
        statuses = {r["operation"]: r["status"] for r in results if r["operation"] in ops}
        return {"statuses": statuses, "pytest_exit": p.returncode,
                "minutes": round((time.monotonic() - t0) / 60, 1)}
    finally:
        subprocess.run([PY, "-m", "harness.testbed", "down"], cwd=scratch, env=env,
                       capture_output=True)
        subprocess.run(f"docker images -q 'tb/*:{tag}' | xargs -r docker rmi -f", shell=True,
                       capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bug", action="append", help="only this bug (file stem); repeatable")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    bugs = [parse(p) for p in sorted(BUGS.glob("*.patch"))]
    if args.bug:
        unknown = set(args.bug) - {b.name for b in bugs}
        if unknown:
            raise SystemExit(f"unknown bug(s) {sorted(unknown)}; have {[b.name for b in bugs]}")
        bugs = [b for b in bugs if b.name in args.bug]
    rows = []
    union = sorted({op for b in bugs for op in b.catches})
    baseline_ok = None
    if not args.skip_baseline:
        base = run_one(Bug("baseline", None, "none (the tree as committed)", "-", union), union, 0)
        baseline_ok = all(base["statuses"].get(op) == "ok" for op in union)
        log(f"baseline: {base['statuses']} ({base['minutes']} min)")
    for n, bug in enumerate(bugs, 1):
        res = run_one(bug, bug.catches, n)
        caught = [op for op in bug.catches if res["statuses"].get(op) not in ("ok", None)]
        rows.append((bug, caught, res))
        log(f"{bug.name}: {'CAUGHT by ' + ', '.join(caught) if caught else 'NOT CAUGHT'} "
            f"({res['statuses']}, {res['minutes']} min)")
    print("\n| bug | HA promise | operations run | caught by | minutes |\n|---|---|---|---|---|")
    for bug, caught, res in rows:
        print(f"| {bug.what} | {bug.promise} | {' '.join(bug.catches)} | "
              f"{', '.join(caught) or '**not caught**'} | {res['minutes']} |")
    if baseline_ok is not None:
        print(f"\nbaseline (unpatched) on {len(union)} operations: {'ok' if baseline_ok else 'FAILED'}")
    out = ROOT / "runs" / "selftest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"baseline_ok": baseline_ok, "bugs": [
        {"bug": b.name, "what": b.what, "catches": b.catches, "caught_by": c, **r}
        for b, c, r in rows]}, indent=2))
    return 0 if all(c for _, c, _ in rows) and baseline_ok is not False else 1


if __name__ == "__main__":
    sys.exit(main())
