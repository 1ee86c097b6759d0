"""The scenario file loader: the real matrix parses; malformed ones are clear errors."""
import pytest

from scenarios.matrix import MatrixError, load, parse

GOOD = """
defaults: {load: {rate: 5, hold_s: 10, warmup_established: 30, after_s: 15}}
operations:
  - {id: a, seed: s, fault: {kind: kill_process, target: master, app: gateway},
     switchover: true, transient: drop}
"""


def test_the_shipped_matrix_parses():
    ops = load()
    assert ops and all(op.load.rate > 0 for op in ops)


def test_defaults_apply():
    (op,) = parse(GOOD)
    assert op.load.hold_s == 10 and op.transient == "drop"


@pytest.mark.parametrize("text, message", [
    ("operations: [", "not valid YAML"),
    ("[1, 2]", "'operations' list"),
    (GOOD.replace("transient: drop", "transient: maybe"), "transient must be"),
    (GOOD.replace("app: gateway", "app: nginx"), "fault.app must be"),
    (GOOD.replace("target: master", "target: both"), "fault.target"),
    (GOOD.replace("kind: kill_process", "kind: meteor"), "fault.kind"),
    (GOOD.replace(", seed: s", ""), "missing ['seed']"),
    (GOOD.replace("rate: 5", "rate: fast"), "load needs numeric"),
])
def test_malformed_matrix_is_a_clear_error(text, message):
    with pytest.raises(MatrixError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(text)
