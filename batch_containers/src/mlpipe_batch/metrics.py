"""Binary classification metrics in numpy: rank-based (Mann-Whitney) ROC AUC and log loss."""

from __future__ import annotations

import math

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic: the probability that a random positive outscores a random
    negative, ties counting one half. NaN when only one class is present."""
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape} vs {s.shape}")
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    sorted_scores = s[order]
    # Average ranks (1-based) of tied groups.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    group_rank = first + (counts + 1) / 2.0
    ranks = np.repeat(group_rank, counts)
    rank_sum = float(ranks[y[order]].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def log_loss(labels: np.ndarray, probabilities: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of `probabilities` (clipped to [eps, 1-eps]) against 0/1 labels."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), eps, 1.0 - eps)
    if y.size == 0:
        return math.nan
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def classification_report(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float | int | None]:
    y = np.asarray(labels).ravel()
    return {
        "auc": _finite_or_none(roc_auc(y, probabilities)),
        "log_loss": _finite_or_none(log_loss(y, probabilities)),
        "rows": int(y.size),
        "positive_rate": float(y.mean()) if y.size else None,
    }


def _finite_or_none(value: float) -> float | None:  # JSON has no NaN
    return float(value) if math.isfinite(value) else None
