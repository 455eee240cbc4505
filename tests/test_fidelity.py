"""The finite-and-close rule that export parity, the scorer and the benchmarks share."""

import numpy as np
import pytest

from common.metrics import agreement, first_non_finite_row, max_abs_diff, sigmoid


def test_nan_or_inf_anywhere_is_an_infinite_gap():
    reference = np.full((4, 3), 0.25)
    for bad in (np.nan, np.inf, -np.inf):
        candidate = reference.copy()
        candidate[2, 1] = bad
        assert max_abs_diff(reference, candidate) == float("inf")
        assert max_abs_diff(candidate, reference) == float("inf")
        assert first_non_finite_row(candidate) == 2


def test_finite_gap_is_the_largest_absolute_difference():
    reference = np.array([[0.1, 0.9], [0.5, 0.5]])
    candidate = np.array([[0.1, 0.8], [0.53, 0.5]])
    assert max_abs_diff(reference, candidate) == pytest.approx(0.1)
    assert first_non_finite_row(candidate) is None


def test_shapes_must_agree_and_sigmoid_does_not_overflow():
    with pytest.raises(ValueError, match="shapes differ"):
        max_abs_diff(np.zeros((2, 6)), np.zeros((3, 6)))
    probs = sigmoid(np.array([-1000.0, 0.0, 1000.0], dtype=np.float32))
    assert np.isfinite(probs).all()
    assert probs.tolist() == [0.0, 0.5, 1.0]


def test_agreement_counts_flag_changes_per_label():
    reference = np.array([[0.10, 0.60], [0.49, 0.70], [0.90, 0.20], [0.51, 0.10]])
    candidate = np.array([[0.10, 0.60], [0.51, 0.70], [0.90, 0.20], [0.49, 0.30]])
    figures = agreement(reference, candidate, thresholds=[0.5, 0.5])
    assert figures["max_abs_diff"] == pytest.approx(0.2)
    assert figures["flag_agreement"] == [0.5, 1.0]
    assert figures["flag_agreement_min"] == 0.5
    assert figures["rows_with_a_flag_change"] == 2
    assert 0.02 < figures["p99_abs_diff"] < 0.2


def test_agreement_of_a_nan_candidate_is_an_infinite_gap_without_flags():
    candidate = np.full((3, 2), np.nan)
    figures = agreement(np.zeros((3, 2)), candidate, thresholds=[0.5, 0.5])
    assert figures["max_abs_diff"] == figures["p99_abs_diff"] == float("inf")
    assert "flag_agreement_min" not in figures
