"""A bring-up that fails saves the logs and tears down what it started (no Docker: the
compose calls, the health wait and the log saving are replaced)."""
import pytest

from harness.testbed import Testbed, TestbedError


@pytest.fixture
def tb(tmp_path, monkeypatch):
    t = Testbed.__new__(Testbed)           # no Docker client needed for this rule
    t.project, t.dir, t.env, t.variant = "unit", tmp_path / "state", {}, ""
    t.env_file = t.dir / "testbed.env"
    done = []
    monkeypatch.setattr(t, "ensure_images", lambda: None)
    monkeypatch.setattr(t, "containers", lambda: [])
    monkeypatch.setattr(t, "_write_env", lambda: t.env.update(TB_NET="172.30"))
    monkeypatch.setattr(t, "compose", lambda *a, **k: done.append(("compose",) + a))
    monkeypatch.setattr(t, "save_logs", lambda out: done.append(("logs", out)) or out)
    monkeypatch.setattr(t, "down", lambda: done.append(("down",)))
    t.done = done
    return t


def test_a_failed_bring_up_saves_the_logs_then_tears_down(tb, tmp_path, monkeypatch):
    monkeypatch.setattr(tb, "running", lambda: False)

    def never_healthy(deadline_s):
        raise TestbedError("testbed not healthy after 1 s: host-a: OAM unreachable")
    monkeypatch.setattr(tb, "wait_healthy", never_healthy)
    with pytest.raises(TestbedError, match="not healthy"):
        tb.up(deadline_s=1, logs_dir=tmp_path / "logs")
    assert tb.done == [("compose", "up", "-d"), ("logs", tmp_path / "logs"), ("down",)]


def test_an_attached_testbed_is_never_torn_down(tb, monkeypatch):
    monkeypatch.setattr(tb, "running", lambda: True)
    monkeypatch.setattr(tb, "stale_containers", lambda: [])

    def never_healthy(deadline_s):
        raise TestbedError("not healthy")
    monkeypatch.setattr(tb, "wait_healthy", never_healthy)
    with pytest.raises(TestbedError):
        tb.up(deadline_s=1)
    assert tb.done == []


def test_attaching_to_a_running_testbed_of_another_variant_is_refused(tb, monkeypatch):
    monkeypatch.setattr(tb, "running", lambda: True)
    monkeypatch.setattr(tb, "stale_containers", lambda: [])
    monkeypatch.setattr(tb, "wait_healthy", lambda deadline_s: None)
    monkeypatch.setenv("TB_VARIANT", "external-db")
    with pytest.raises(TestbedError, match="runs variant \\(none\\), not external-db"):
        tb.up(deadline_s=1)
    monkeypatch.delenv("TB_VARIANT")          # no VARIANT given: whatever runs is attached
    monkeypatch.setattr("harness.inventory.write_for", lambda t, path: path)
    tb.up(deadline_s=1)
    assert tb.done == []
