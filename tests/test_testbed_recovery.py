"""A test that leaves the testbed broken beyond what heal_all repairs fails alone: the
next test that uses the testbed finds it unhealthy, saves the nodes' logs and gets a
new testbed; a testbed that breaks again and again stops the session (no Docker: the
testbed is a fake that is unhealthy until it is brought up anew)."""
pytest_plugins = ["pytester"]

CONFTEST = '''
import pytest
import harness.faults
from harness.testbed import TestbedError

pytest_plugins = ["harness.plugin"]
EVENTS = []
harness.faults.heal_all = lambda tb: EVENTS.append("heal")


class FakeTestbed:
    def __init__(self):
        self.healthy = True
    def health(self):
        return self.healthy, [] if self.healthy else ["db backup: replication stopped"]
    def wait_healthy(self, deadline_s, quiet=False):
        if not self.healthy:
            raise TestbedError("testbed not healthy after 90 s: db backup: replication stopped")
    def save_logs(self, out):
        out.mkdir(parents=True)
        (out / "host-a.log").write_text("log")
        EVENTS.append("logs")
        return out
    def down(self):
        EVENTS.append("down")
    def up(self, logs_dir=None):
        EVENTS.append("up")
        self.healthy = True


@pytest.fixture(scope="session")
def testbed(request):
    tb = FakeTestbed()
    yield tb
    print("EVENTS", EVENTS)
'''

TESTS = '''
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_breaks_it(testbed, n):
    testbed.healthy = False          # what heal_all cannot repair
    assert False, "this test broke the testbed"

def test_after(testbed):
    assert testbed.healthy
'''


def test_the_test_after_a_broken_testbed_runs_on_a_new_one(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_ops=TESTS.format(n=1))
    res = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-s", f"--tb-runs={pytester.path / 'runs'}")
    res.assert_outcomes(passed=1, failed=1)
    out = res.stdout.str()
    assert "EVENTS ['heal', 'logs', 'down', 'up']" in out
    assert "[fail] test_ops.py::test_breaks_it[0]: AssertionError: this test broke the testbed" in out
    assert list((pytester.path / "runs").glob("*/rebuild-1-logs/host-a.log"))


def test_a_testbed_that_breaks_again_and_again_stops_the_session(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_ops=TESTS.format(n=4))
    res = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--tb-runs={pytester.path / 'runs'}")
    assert res.ret == 1
    res.stdout.fnmatch_lines(["*testbed broken again before*after 2 rebuilds*replication stopped*"])
    res.assert_outcomes(failed=3)        # the 4th and test_after never ran
