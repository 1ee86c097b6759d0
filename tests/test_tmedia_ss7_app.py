"""The board's SS7 process configuration (emulator/tmedia/ss7_app.py): which unit ends
which link, who listens for the mate connection, and clear errors for a bad setting."""
import pytest

from emulator.ss7.spread import parser
from emulator.tmedia.ss7_app import Ss7Config

ENV = {"TMEDIA_SS7_UNITS": "tmedia-1=10.0.3.21,tmedia-2=10.0.3.22",
       "TMEDIA_SS7_PC": "1001:2002", "TMEDIA_SS7_GROUPS": "tmedia-1=1-30,tmedia-2=31-60"}


def test_unset_means_no_ss7():
    assert Ss7Config.from_env({}) is None


def test_each_unit_ends_its_link_the_first_listens_for_the_mate_and_is_preferred():
    cfg = Ss7Config.from_env(ENV)
    one, two = (parser().parse_args(cfg.argv(u)[3:]) for u in ("tmedia-1", "tmedia-2"))
    assert (one.slc, one.link_listen, one.mate_listen, one.preferred) == \
        (0, ("10.0.3.21", 3565), ("10.0.3.21", 3566), True)
    assert (two.slc, two.link_listen, two.mate_connect, two.preferred) == \
        (1, ("10.0.3.22", 3565), ("10.0.3.21", 3566), False)
    assert one.groups == two.groups == {"tmedia-1": list(range(1, 31)), "tmedia-2": list(range(31, 61))}
    assert (one.opc, one.dpc, one.mate) == (1001, 2002, "tmedia-2")
    assert cfg.argv("tmedia-3") is None                 # the spare serving nothing of SS7


@pytest.mark.parametrize("key, value, says", [
    ("TMEDIA_SS7_UNITS", "tmedia-1=10.0.3.21", "two units"),
    ("TMEDIA_SS7_UNITS", "tmedia-1=nowhere,tmedia-2=10.0.3.22", "UNIT=IPv4"),
    ("TMEDIA_SS7_PC", "1001", "OWN:FAR"),
    ("TMEDIA_SS7_PC", "1001:99999", "14-bit"),
    ("TMEDIA_SS7_GROUPS", "tmedia-1=1-30", "trunk group for each"),
    ("TMEDIA_SS7_PORT", "0", "not a port")])
def test_a_bad_setting_is_named(key, value, says):
    with pytest.raises(SystemExit, match=f"{key}=.*{says}"):
        Ss7Config.from_env({**ENV, key: value})


def test_the_stack_flag_reaches_the_node_through_its_control_file(tmp_path):
    """The board writes the served unit's SS7 stack flag where the node reads it: at the
    node's start (a restarted node begins with it) and on each change only."""
    from emulator.ss7.spread import read_control
    from emulator.tmedia.ss7_app import Ss7Process
    cfg = Ss7Config.from_env({**ENV, "TMEDIA_SS7_STATUS": str(tmp_path / "st.json"),
                              "TMEDIA_SS7_CONTROL": str(tmp_path / "ctl.json")})
    assert cfg.argv("tmedia-2")[-2:] == ["--control", str(tmp_path / "ctl.json")]
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
    cfg = Ss7Config.from_env({**ENV, "TMEDIA_SS7_STATUS": str(tmp_path / "st.json")})
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
