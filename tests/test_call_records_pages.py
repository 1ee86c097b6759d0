"""CallRecords pages come from sorted indexes kept with every change: after any mix of
changes and purges they must list exactly what a sort of every record lists."""
import random

from emulator.host.call_records import LIVE, STATES, TOMBSTONE_S, CallRecords


def brute_page(recs: CallRecords, after, limit, live_only):
    ids = sorted(i for i, r in recs._recs.items() if not live_only or r["state"] in LIVE)
    rest = [i for i in ids if after is None or i > after]
    return [i for i in rest[:limit]], len(rest) > limit, len(ids)


def walk(recs, limit, live_only):
    out, after = [], None
    while True:
        page, more, total = recs.page(after, limit, live_only)
        out += [r["call_id"] for r in page]
        if not more:
            return out, total
        after = page[-1]["call_id"]


def test_pages_match_a_full_sort_through_random_changes_and_purges():
    rng = random.Random(7)
    now = [1000.0]
    recs = CallRecords(clock=lambda: now[0])
    for step in range(3000):
        cid = f"c{rng.randrange(400)}"
        recs.merge({"call_id": cid, "state": rng.choice(STATES), "cli": f"u{rng.randrange(5)}"})
        now[0] += rng.random() * 0.2
        if step % 250 == 0:
            now[0] += TOMBSTONE_S * rng.random()
            recs.purge()
        if step % 100 == 0:
            for live_only in (False, True):
                after = rng.choice([None, f"c{rng.randrange(400)}"])
                page, more, total = recs.page(after, 7, live_only)
                assert ([r["call_id"] for r in page], more, total) == \
                    brute_page(recs, after, 7, live_only)
    for live_only in (False, True):
        listed, total = walk(recs, 13, live_only)
        assert listed == brute_page(recs, None, 10 ** 6, live_only)[0]
        assert total == len(listed)
