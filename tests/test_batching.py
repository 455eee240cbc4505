"""common.batching: the scorer's batches (sorted by length, padded per batch, a token budget
on the CPU) and the way results go back into input order."""

import numpy as np
import pytest

from common.batching import Batching, Tokens, batches, batching_for, cuts, in_input_order


def tokens_of(lengths: list[int]) -> Tokens:
    """Ragged ids where text i holds `lengths[i]` tokens, each token's id being i + 1."""
    lengths = np.asarray(lengths, dtype=np.int64)
    ids = np.concatenate([np.full(n, i + 1, dtype=np.int32) for i, n in enumerate(lengths)])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return Tokens(ids=ids, starts=starts, lengths=lengths)


def test_rows_only_batches_take_consecutive_sorted_rows():
    got = [(rows.tolist(), feed["input_ids"].shape) for rows, feed in batches(
        tokens_of([3, 1, 2, 5, 4]), Batching(size=2)
    )]  # fmt: skip
    assert got == [([1, 2], (2, 2)), ([0, 4], (2, 4)), ([3], (1, 5))]


def test_token_budget_takes_the_most_rows_that_fit():
    # Sorted lengths 1..5, at most 4 rows and 8 tokens (rows x longest): 1x2 fits in 2 rows
    # (2 x 2 = 4; 3 rows would be 3 x 3 = 9), then 3,4 (2 x 4 = 8), then 5 alone.
    got = list(cuts(np.array([1, 2, 3, 4, 5]), Batching(size=4, max_tokens=8)))
    assert got == [(0, 2), (2, 4), (4, 5)]


def test_a_row_longer_than_the_budget_still_gets_a_batch():
    assert list(cuts(np.array([2, 30, 40]), Batching(size=8, max_tokens=16))) == [
        (0, 1),
        (1, 2),
        (2, 3),
    ]


def test_padding_to_a_multiple_counts_in_the_budget():
    # Widths round up to 8: two rows of 5 tokens are 2 x 8 = 16 tokens, over a budget of 12.
    assert list(cuts(np.array([5, 5]), Batching(size=4, pad_to=8, max_tokens=12))) == [
        (0, 1),
        (1, 2),
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_row_once_within_limits_and_back_in_input_order(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 513, size=1000).tolist()
    tokens, batching = tokens_of(lengths), Batching(size=64, max_tokens=2048)
    seen = []
    for rows, feed in batches(tokens, batching):
        height, width = feed["input_ids"].shape
        assert height <= 64 and (height * width <= 2048 or height == 1)
        assert width == max(lengths[r] for r in rows)
        assert (feed["attention_mask"].sum(axis=1) == [lengths[r] for r in rows]).all()
        assert (feed["input_ids"][:, 0] == rows + 1).all()  # each row holds its own ids
        seen.extend(rows.tolist())
    assert sorted(seen) == list(range(1000))
    back = in_input_order(tokens, lambda feed: feed["attention_mask"].sum(axis=1), batching)
    assert back.tolist() == lengths


def test_the_scorer_batches_per_device():
    assert batching_for("cpu") == Batching(size=64, pad_to=1, max_tokens=2048)
    assert batching_for("cpu", 16) == Batching(size=16, pad_to=1, max_tokens=512)
    assert batching_for("cuda") == Batching(size=256, pad_to=8, max_tokens=None)
