"""overload.SourceShare: new calls per source, max-min fair, on a fake clock."""
from emulator.tmedia.overload import SourceShare


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def offer(share, clock, rates: dict, seconds: float, step: float = 0.001) -> dict:
    """Each source offers `rate` new calls a second, evenly; the calls taken per source."""
    taken = {s: 0 for s in rates}
    due = {s: 0.0 for s in rates}
    for _ in range(int(seconds / step)):
        clock.t += step
        for s, r in rates.items():
            due[s] += r * step
            while due[s] >= 1:
                due[s] -= 1
                taken[s] += share.take(s)
    return taken


def test_one_source_alone_gets_the_whole_rate():
    clock = Clock()
    share = SourceShare(150, clock=clock)
    taken = offer(share, clock, {"a": 140}, 5)
    assert taken["a"] >= 140 * 5 - 2
    assert share.shed <= 2


def test_a_flood_beside_a_caller_gets_its_share_and_the_caller_all_its_calls():
    clock = Clock()
    share = SourceShare(150, clock=clock)
    taken = offer(share, clock, {"caller": 10, "flood": 770}, 3)
    assert taken["caller"] == 30                        # every call of the quiet source
    # half the rate (two sources), and the burst it found when it came alone
    assert 3 * 75 - 20 <= taken["flood"] <= 3 * 75 + 150 * 0.2 + 10
    assert share.shed == 770 * 3 - taken["flood"]


def test_an_idle_source_is_forgotten_and_gives_its_share_back():
    clock = Clock()
    share = SourceShare(100, clock=clock)
    offer(share, clock, {"a": 50, "b": 50}, 1)
    clock.t += 2 * SourceShare.WINDOW_S                 # b stops
    taken = offer(share, clock, {"a": 95}, 2)
    assert taken["a"] >= 95 * 2 - 25 and share.status()["sources"] == 1


def test_the_sources_remembered_are_bounded():
    clock = Clock()
    share = SourceShare(100, clock=clock)
    for i in range(SourceShare.MAX_SOURCES + 10):
        share.take(f"10.0.{i // 250}.{i % 250}")
    assert len(share.sources) <= SourceShare.MAX_SOURCES + 1
