"""The host control protocol (emulator/host/ctl.py): init's server side and the command
line, over a real unix socket in a temporary directory; handlers are fakes."""
from __future__ import annotations

import json

import pytest

from emulator.host import ctl
from emulator.host.mysql_server import CtlError


@pytest.fixture
def control(tmp_path, monkeypatch):
    path = str(tmp_path / "init.sock")
    calls = []

    def kill():
        calls.append("kill")
        return "mysql killed (pid 42, exit code -9, 0.01 s)", {"running": False}

    def shutdown():
        raise CtlError("mysql is not running")

    handlers = {("mysql", "kill"): kill, ("mysql", "shutdown"): shutdown,
                ("service", "status"): lambda: ("the Toolpack service is running (pid 7)",
                                                {"running": True, "pid": 7})}
    server = ctl.serve(handlers, path)
    monkeypatch.setattr(ctl, "SOCKET_PATH", path)
    yield path, calls
    server.shutdown()
    server.server_close()


def test_a_request_runs_its_handler_and_returns_its_message(control):
    path, calls = control
    reply = ctl.request("mysql", "kill", path)
    assert reply == {"ok": True, "message": "mysql killed (pid 42, exit code -9, 0.01 s)",
                     "data": {"running": False}}
    assert calls == ["kill"]


def test_a_refused_request_is_one_line_and_exit_code_1(control, capsys):
    assert ctl.main(["mysql", "shutdown"]) == 1
    out = capsys.readouterr()
    assert out.err == "error: mysql is not running\n" and out.out == ""


def test_success_prints_the_message_and_exit_code_0(control, capsys):
    assert ctl.main(["mysql", "kill"]) == 0
    assert capsys.readouterr().out == "mysql killed (pid 42, exit code -9, 0.01 s)\n"


def test_json_prints_the_whole_reply(control, capsys):
    assert ctl.main(["service", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data"] == {"running": True, "pid": 7}


def test_an_unknown_action_is_refused_before_asking_init(control, capsys):
    path, calls = control
    assert ctl.main(["mysql", "restart"]) == 1
    assert "mysql has no action 'restart'" in capsys.readouterr().err
    assert calls == []


def test_an_action_init_does_not_serve_is_an_error_reply(control):
    path, _ = control
    reply = ctl.request("service", "quit", path)
    assert reply["ok"] is False and "unknown request" in reply["message"]


def test_no_init_listening_is_exit_code_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ctl, "SOCKET_PATH", str(tmp_path / "absent.sock"))
    assert ctl.main(["mysql", "status"]) == 2
    assert "host init not reachable" in capsys.readouterr().err
