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


SWEEP_TESTS = '''
import harness.faults._set

harness.faults._set.heal_all = lambda tb: EVENTS.append("sweep")
from conftest import EVENTS


class FakeFault:
    name, kind, target, healed_at = "fake", "fake", "host-a", 0.0
    def inject(self):
        return 0.0
    def heal(self):
        EVENTS.append("healed")


def test_first(testbed, faults):
    pass

def test_second(testbed, faults):
    pass

def test_without_the_fault_set(testbed):
    pass

def test_after_one_without(testbed, faults):
    pass

def test_heals_its_own(testbed, faults):
    faults.inject(FakeFault())
    faults.heal()
'''


def test_a_sweep_is_left_out_only_right_after_a_test_whose_end_swept(pytester):
    """The fault set's end sweeps; the next test's start does not sweep again, unless a
    test without the fault set ran between them; a heal with nothing injected since the
    last one does not sweep again either."""
    pytester.makeconftest(CONFTEST.replace("EVENTS = []", "EVENTS = []  # shared"))
    pytester.makepyfile(test_ops=SWEEP_TESTS)
    res = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-s", f"--tb-runs={pytester.path / 'runs'}")
    res.assert_outcomes(passed=5)
    assert ("EVENTS ['heal', 'sweep', 'sweep', 'heal', 'sweep', 'healed', 'sweep']"
            in res.stdout.str())
