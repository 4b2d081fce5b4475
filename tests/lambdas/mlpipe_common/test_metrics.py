from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from mlpipe_common.metrics import log_loss, roc_auc


def test_auc_hand_examples() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # one tie between a positive and a negative counts one half: (1 + 0.5 + 1 + 1) / 4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.8]) == pytest.approx(0.875)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 0], [0.9, 0.1]) == pytest.approx(1.0)
    assert roc_auc([1, 0], [0.1, 0.9]) == pytest.approx(0.0)


def test_auc_matches_pairwise_definition_on_random_data() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200), 1)  # many ties
    positives = scores[labels == 1]
    negatives = scores[labels == 0]
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives)]
    assert roc_auc(labels, scores) == pytest.approx(sum(pairs) / len(pairs))


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match=r"both classes"):
        roc_auc([1, 1], [0.2, 0.3])


def test_log_loss_hand_example() -> None:
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert math.isfinite(log_loss([1, 0], [0.0, 1.0]))  # clipped, not infinite


def test_labels_must_be_binary() -> None:
    with pytest.raises(ValueError, match=r"0 or 1"):
        log_loss([2, 0], [0.5, 0.5])
