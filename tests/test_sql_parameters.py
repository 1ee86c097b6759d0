"""No SQL built from strings where API input reaches the database: every statement of
the configuration store and the OAM API is a constant, with the values passed as
parameters (pymysql quotes them). Checked on the source's syntax tree, so a new
f-string or `%`-formatted statement fails here before any fuzzer has to find it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

HOST = Path(__file__).resolve().parents[1] / "emulator" / "host"
MODULES = ["config_store.py", "tboamapp.py", "gateway.py", "routing.py", "call_records.py"]


def constant_str(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    # implicit concatenation is one Constant; an explicit "a" + "b" of constants is fine too
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and \
        constant_str(node.left) and constant_str(node.right)


def built(node: ast.AST) -> bool:
    """A statement put together at run time: an f-string, `%` or `+` formatting, or a
    .format() / .join() call (a plain name is a statement passed through, allowed)."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return not constant_str(node)
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
        node.func.attr in ("format", "join")


def statements(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("run", "execute", "executemany") and node.args:
            yield node


@pytest.mark.parametrize("module", MODULES)
def test_every_statement_is_a_constant_with_parameters(module):
    tree = ast.parse((HOST / module).read_text())
    bad = [f"{module}:{n.lineno}: {ast.unparse(n.args[0])[:80]}"
           for n in statements(tree) if built(n.args[0])]
    assert not bad, "SQL built from strings:\n" + "\n".join(bad)


def test_the_check_sees_a_formatted_statement():
    tree = ast.parse('db.run(f"SELECT * FROM accounts WHERE name = \'{name}\'")\n'
                     'db.run("SELECT 1 FROM t WHERE a = %s", (a,))\n'
                     'cur.execute("DELETE FROM t WHERE id = %d" % rid)\n')
    assert [built(n.args[0]) for n in statements(tree)] == [True, False, True]
