"""`SHARD=i/N` (`--tb-shard i/N`): run a deterministic slice of what pytest collected, so
N machines run the matrix side by side and `python -m harness.report merge` makes one
report of their run directories.

The slice is round-robin over the collection order (the order of scenarios/matrix.yaml
for the matrix): test k (from 0) belongs to shard k mod N + 1. Every test is in exactly
one shard, and the same files give the same slices on every machine. Neighbours in the
matrix (the kill, SIGSTOP and MySQL operations of one kind come together) go to
different shards, which evens out their run times."""
from __future__ import annotations


class ShardError(ValueError):
    pass


def parse(spec: str) -> tuple[int, int]:
    """'i/N' -> (i, N), with 1 <= i <= N; anything else is a clear error."""
    try:
        i_s, n_s = spec.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise ShardError(f"shard {spec!r}: expected i/N, e.g. 2/3") from None
    if n < 1 or not 1 <= i <= n:
        raise ShardError(f"shard {spec!r}: need 1 <= i <= N")
    return i, n


def mine(count: int, i: int, n: int) -> list[bool]:
    """Which of `count` tests (in collection order) shard i of n runs."""
    return [k % n == i - 1 for k in range(count)]
