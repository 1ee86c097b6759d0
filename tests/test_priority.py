"""The control plane's CPU priority (emulator/priority.py), in a child process so that
the test run itself keeps its own."""
import subprocess
import sys

CHILD = """
import os, subprocess
from emulator.priority import raise_priority, normal, CONTROL_NICE
nice = raise_priority(print)
out = subprocess.run(normal(["python3", "-c", "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"]),
                     capture_output=True, text=True).stdout.strip()
print("RESULT", nice, out)
"""


def test_raised_where_permitted_and_what_it_starts_runs_at_normal_priority():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout
    nice, child = out.split("RESULT ")[1].split()
    if int(nice) == 0:      # no CAP_SYS_NICE here: the refusal was logged, nothing changed
        assert "cannot set nice" in out
    else:
        assert int(nice) == -10
    assert int(child) == 0
