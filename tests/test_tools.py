"""needs(): skipped on a developer's machine without the program, never in CI."""
import tools


def test_missing_program_skips_only_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert tools.needs("no-such-program-tb", "none").name == "skip"
    monkeypatch.setenv("CI", "1")
    assert tools.needs("no-such-program-tb", "none").name == "usefixtures"
