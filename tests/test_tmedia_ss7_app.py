"""The board's SS7 process configuration (emulator/tmedia/ss7_app.py), as the engine
pushes it: which unit ends which link, who listens for the mate connection, clear errors
for a bad push, and a reload's change restarting the node."""
import pytest

from emulator.ss7.spread import parser
from emulator.tmedia.ss7_app import Ss7Config

PUSH = {"linkset": "pstn", "opc": 1001, "dpc": 2002,
        "units": [["tmedia-1", "10.0.3.21"], ["tmedia-2", "10.0.3.22"]],
        "groups": {"tmedia-1": [1, 30], "tmedia-2": [31, 60]}, "sip_port": 5070,
        "group_names": {"tmedia-1": "isup-1", "tmedia-2": "isup-2"}}
def test_none_pushed_means_no_ss7():
    assert Ss7Config.from_push(None) is None


def test_each_unit_ends_its_link_the_first_listens_for_the_mate_and_is_preferred():
    cfg = Ss7Config.from_push(PUSH)
    one, two = (parser().parse_args(cfg.argv(u)[3:]) for u in ("tmedia-1", "tmedia-2"))
    assert (one.slc, one.link_listen, one.mate_listen, one.preferred) == \
        (0, ("10.0.3.21", 3565), ("10.0.3.21", 3566), True)
    assert (two.slc, two.link_listen, two.mate_connect, two.preferred) == \
        (1, ("10.0.3.22", 3565), ("10.0.3.21", 3566), False)
    assert one.groups == two.groups == {"tmedia-1": list(range(1, 31)), "tmedia-2": list(range(31, 61))}
    assert (one.opc, one.dpc, one.mate) == (1001, 2002, "tmedia-2")
    assert one.sip == ("10.0.3.21", 5070) and two.sip == ("10.0.3.22", 5070)
    assert cfg.argv("tmedia-3") is None                 # the spare serving nothing of SS7


@pytest.mark.parametrize("change, says", [
    ({"units": [["tmedia-1", "10.0.3.21"]]}, "two \\[unit, address\\] pairs"),
    ({"units": [["tmedia-1", "10.0.3.21"], ["tmedia-1", "10.0.3.22"]]}, "two units"),
    ({"units": [["tmedia-1", "nowhere"], ["tmedia-2", "10.0.3.22"]]}, "not an IPv4"),
    ({"opc": 99999}, "ss7.opc.*0..16383"),
    ({"dpc": "2002"}, "ss7.dpc"),
    ({"sip_port": True}, "ss7.sip_port"),
    ({"groups": {"tmedia-1": [1, 30]}}, "ss7.groups"),
    ({"groups": {"tmedia-1": [1, 30], "tmedia-2": [60, 31]}}, "ss7.groups"),
    ({"groups": {"tmedia-1": [1, 30], "tmedia-2": [31, 5000]}}, "ss7.groups")])
def test_a_bad_push_is_named(change, says):
    with pytest.raises(ValueError, match=says):
        Ss7Config.from_push({**PUSH, **change})
    with pytest.raises(ValueError, match="object or null"):
        Ss7Config.from_push([1, 2])


def test_a_bad_port_in_the_boards_environment_is_named():
    with pytest.raises(SystemExit, match="TMEDIA_SS7_PORT='0': not a port"):
        Ss7Config.from_push(PUSH, {"TMEDIA_SS7_PORT": "0"})


def test_a_changed_push_restarts_the_node_with_it_and_the_same_push_changes_nothing(monkeypatch, tmp_path):
    """A reload that changes the CICs restarts the served unit's node with the new
    groups; a repeated push (every resync) does not touch it; a push without SS7 stops
    it; a board serving nothing keeps the push for when it takes a unit over."""
    from emulator.tmedia import ss7_app
    started, stopped = [], []

    class Popen:
        pid = 7

        def __init__(self, argv):
            started.append(argv)

        def poll(self):
            return None

        def terminate(self):
            stopped.append(1)

        def wait(self, timeout=None):
            return 0
        returncode = 0
    monkeypatch.setattr(ss7_app.subprocess, "Popen", Popen)
    env = {"TMEDIA_SS7_STATUS": str(tmp_path / "st.json"), "TMEDIA_SS7_CONTROL": str(tmp_path / "c.json")}
    logs = []
    p = ss7_app.Ss7Process(None, logs.append, env)
    p.configure(PUSH, None)                      # a spare: kept, nothing started
    assert started == [] and p.cfg is not None
    p.start("tmedia-2")                          # it takes tmedia-2 over
    assert len(started) == 1
    p.configure(dict(PUSH), "tmedia-2")          # the resync's same push
    assert len(started) == 1 and stopped == []
    p.configure({**PUSH, "groups": {"tmedia-1": [1, 20], "tmedia-2": [21, 40]}}, "tmedia-2")
    assert stopped == [1] and len(started) == 2
    assert started[-1][started[-1].index("--groups") + 1] == "tmedia-1=1-20,tmedia-2=21-40"
    assert any("SS7 configuration changed" in line and "tmedia-1=1-20" in line for line in logs)
    p.configure(None, "tmedia-2")                # SS7 removed from the configuration
    assert stopped == [1, 1] and p.proc is None and p.cfg is None
    p.configure({**PUSH, "opc": "x"}, "tmedia-2")   # refused by the control agent already
    assert len(started) == 2 and p.cfg is None


def test_the_stack_flag_reaches_the_node_through_its_control_file(tmp_path):
    """The board writes the served unit's SS7 stack flag where the node reads it: at the
    node's start (a restarted node begins with it) and on each change only."""
    from emulator.ss7.spread import read_control
    from emulator.tmedia.ss7_app import Ss7Process
    cfg = Ss7Config.from_push(PUSH, {"TMEDIA_SS7_STATUS": str(tmp_path / "st.json"),
                                     "TMEDIA_SS7_CONTROL": str(tmp_path / "ctl.json")})
    argv = cfg.argv("tmedia-2")
    assert argv[argv.index("--control") + 1] == str(tmp_path / "ctl.json")
    logs = []
    p = Ss7Process(cfg, logs.append)
    assert read_control(cfg.control_path) is True          # no file yet: enabled
    p.set_enabled(False)
    assert read_control(cfg.control_path) is False and len(logs) == 1
    p.set_enabled(False)
    assert len(logs) == 1                                   # no change, nothing said
    p.set_enabled(True)
    assert read_control(cfg.control_path) is True
    (tmp_path / "ctl.json").write_text("not json")
    assert read_control(cfg.control_path) is True           # unreadable: enabled
    assert read_control(None) is True
    Ss7Process(None, logs.append).set_enabled(False)       # no SS7 here: nothing written


def test_the_status_survives_the_node_stopped_while_it_is_read(tmp_path):
    """A poll reads the node's status on the control thread while the board stops the node
    on its own: the process is taken once (reading it twice raised AttributeError on None,
    a poll answered with an internal error in the ss7 variant's matrix)."""
    from emulator.tmedia.ss7_app import Ss7Process
    cfg = Ss7Config.from_push(PUSH, {"TMEDIA_SS7_STATUS": str(tmp_path / "st.json")})
    p = Ss7Process(cfg, lambda line: None)

    class Proc:       # the stop lands between the check and the use
        @property
        def pid(self):
            p.proc = None
            return 42

        def poll(self):
            return None
    p.proc = Proc()
    assert p.status() == {"pid": 42, "running": True, "starts": 0}
    assert p.status() is None
