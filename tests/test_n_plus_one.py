"""The N+1 rule (emulator/host/n_plus_one.py): which board serves which unit, from the
boards' replies, with the clock passed in."""
from __future__ import annotations

from emulator.host.n_plus_one import BoardView, plan

SERVICES = {"tmedia-1": "10.0.3.21/24", "tmedia-2": "10.0.3.22/24"}
DEFAULTS = {"tmedia-1": "tmedia-1", "tmedia-2": "tmedia-2"}
DEAD = 3.0


def views(**kw):
    """board -> BoardView; kw: board=(last_reply, serves, bond_up), all polled since t=0."""
    out = {}
    for name, (last, serves, bond) in kw.items():
        out[name.replace("_", "-")] = BoardView(first_poll=0.0, last_reply=last, serves=serves, bond_up=bond)
    return out


def test_initial_assignment_gives_each_unit_its_default_board():
    b = views(tmedia_1=(10.0, None, True), tmedia_2=(10.0, None, True), tmedia_3=(10.0, None, True))
    assert sorted(plan(b, SERVICES, DEFAULTS, 10.1, DEAD)) == [("tmedia-1", "tmedia-1"),
                                                                ("tmedia-2", "tmedia-2")]


def test_nothing_to_do_when_every_unit_is_served():
    b = views(tmedia_1=(10.0, "tmedia-1", True), tmedia_2=(10.0, "tmedia-2", True),
              tmedia_3=(10.0, None, True))
    assert plan(b, SERVICES, DEFAULTS, 10.1, DEAD) == []


def test_a_dead_board_s_unit_moves_to_the_spare_only_once_it_is_dead():
    b = views(tmedia_1=(10.0, "tmedia-1", True), tmedia_2=(12.0, "tmedia-2", True),
              tmedia_3=(12.0, None, True))
    assert plan(b, SERVICES, DEFAULTS, 12.9, DEAD) == []          # silent 2.9 s: still up
    assert plan(b, SERVICES, DEFAULTS, 13.1, DEAD) == [("tmedia-3", "tmedia-1")]


def test_a_board_with_its_bond_down_loses_its_unit_at_once():
    b = views(tmedia_1=(10.0, "tmedia-1", False), tmedia_2=(10.0, "tmedia-2", True),
              tmedia_3=(10.0, None, True))
    assert plan(b, SERVICES, DEFAULTS, 10.1, DEAD) == [("tmedia-3", "tmedia-1")]


def test_no_move_while_a_board_is_unknown():
    # a new active host has heard tmedia-3 but not yet tmedia-1, which may still serve
    b = views(tmedia_2=(10.0, "tmedia-2", True), tmedia_3=(10.0, None, True))
    b["tmedia-1"] = BoardView(first_poll=9.9)
    assert plan(b, SERVICES, DEFAULTS, 10.1, DEAD) == []


def test_no_fail_back_a_returning_board_stays_spare():
    b = views(tmedia_1=(20.0, None, True), tmedia_2=(20.0, "tmedia-2", True),
              tmedia_3=(20.0, "tmedia-1", True))
    assert plan(b, SERVICES, DEFAULTS, 20.1, DEAD) == []


def test_two_claims_the_default_board_keeps_the_unit():
    b = views(tmedia_1=(20.0, "tmedia-1", True), tmedia_2=(20.0, "tmedia-2", True),
              tmedia_3=(20.0, "tmedia-1", True))
    assert plan(b, SERVICES, DEFAULTS, 20.1, DEAD) == [("tmedia-3", None)]


def test_two_dead_boards_one_spare_serves_one_unit():
    b = views(tmedia_1=(1.0, "tmedia-1", True), tmedia_2=(1.0, "tmedia-2", True),
              tmedia_3=(20.0, None, True))
    assert plan(b, SERVICES, DEFAULTS, 20.1, DEAD) == [("tmedia-3", "tmedia-1")]


def test_a_board_never_heard_is_dead_after_dead_s_of_polling():
    b = views(tmedia_2=(10.0, "tmedia-2", True), tmedia_3=(10.0, None, True))
    b["tmedia-1"] = BoardView(first_poll=5.0)
    assert b["tmedia-1"].state(8.1, DEAD) == "dead"
    assert plan(b, SERVICES, DEFAULTS, 10.1, DEAD) == [("tmedia-3", "tmedia-1")]
