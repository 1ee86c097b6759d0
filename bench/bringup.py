"""Benchmark: `testbed up` time with the images built (compose up to healthy), several
runs, each on a fresh project that is removed afterwards.

    .venv/bin/python bench/bringup.py [--runs 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.testbed import Testbed  # noqa: E402
from results import Results  # noqa: E402  (bench/results.py)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    data = Results()
    data.note_environment(**vars(args))
    times = []
    for i in range(args.runs):
        tb = Testbed(f"benchup{os.getpid()}x{i}")
        tb.ensure_images()                       # not part of the measured time
        os.environ["TB_SKIP_BUILD"] = "1"
        t0 = time.monotonic()
        try:
            tb.up()
            times.append(time.monotonic() - t0)
            data.add("bringup_s", times[-1], "s")
        finally:
            tb.down()
            data.save()
        print(f"run {i + 1}: up to healthy in {times[-1]:.1f} s", flush=True)
    print(f"\ntestbed up (images built): min {min(times):.1f} s, median "
          f"{statistics.median(times):.1f} s, max {max(times):.1f} s over {len(times)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
