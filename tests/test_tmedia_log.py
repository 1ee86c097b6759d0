"""The unit's log never blocks its caller: a full stdout pipe (the container runtime busy)
must not freeze the SIP reactor or the board's loop, and no line is lost or reordered."""
import select
import subprocess
import sys

from harness.testbed import ROOT

LINES, WIDTH = 400, 1000     # 400 kB: several times a pipe's 64 kB buffer

CHILD = f"""
import sys
from emulator.tmedia.log import log
for i in range({LINES}):
    log("tmedia-1", f"line {{i}} " + "x" * {WIDTH})
print("returned", file=sys.stderr, flush=True)
"""


def test_logging_into_a_full_pipe_returns_and_every_line_comes_out_in_order():
    p = subprocess.Popen([sys.executable, "-c", CHILD], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        # nobody reads stdout yet: a caller writing itself blocks at 64 kB, for ever
        ready, _, _ = select.select([p.stderr], [], [], 20)
        assert ready and p.stderr.readline().strip() == b"returned", \
            "log() blocked on a full stdout pipe"
        out, err = p.communicate(timeout=30)      # the reader comes: the writer drains
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == LINES
    assert [ln.split()[3] for ln in lines] == [str(i) for i in range(LINES)]
    assert all(ln.split()[1] == "tmedia-1" for ln in lines)


def test_a_line_logged_right_before_os_exit_is_written_when_flushed():
    """The board reboots by os._exit, which runs no atexit: its REBOOT line must still
    reach the log (CI caught it lost)."""
    child = ("import os\nfrom emulator.tmedia.log import flush, log\n"
             "log('tmedia-1', 'REBOOT: why')\nflush()\nos._exit(75)\n")
    p = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, timeout=30)
    assert p.returncode == 75, p.stderr.decode()
    assert p.stdout.decode().split(" ", 1)[1] == "tmedia-1 REBOOT: why\n"
