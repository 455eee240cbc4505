"""ROC-AUC (macro and per label) of PyTorch and each ONNX variant on a labelled CSV."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from common.fidelity import first_non_finite_row, max_abs_diff
from common.labelled import read_labelled_csv

log = logging.getLogger("benchmarks")

REFERENCE = "pytorch-fp32-bucketed"


def read_labelled(path: Path, text_column: str, labels: list[str], rows: int | None):
    """Texts and 0/1 labels under the one labelled-CSV reader's rules (`common.labelled`);
    rows labelled -1 (Jigsaw's unscored test rows) are left out and counted."""
    data = read_labelled_csv(
        path, text_column, labels, drop_unlabeled=True, limit=rows, flag="--eval-data"
    )
    if data.dropped_unlabeled:
        log.info("%s: %d rows labelled -1 (unscored) left out", path, data.dropped_unlabeled)
    return data.texts, data.labels.astype(np.int8)


def per_label_auc(truth: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict:
    """ROC-AUC per label; None where the sample holds only one class of that label."""
    return {
        name: (
            float(roc_auc_score(truth[:, j], probs[:, j]))
            if 0 < truth[:, j].sum() < len(truth)
            else None
        )
        for j, name in enumerate(labels)
    }


def macro(aucs: dict) -> float | None:
    """Mean ROC-AUC over the labels that have one; None when none has."""
    scored = [a for a in aucs.values() if a is not None]
    return float(np.mean(scored)) if scored else None


def evaluate(engines: list, texts: list[str], truth: np.ndarray, labels: list[str]) -> dict:
    """Score the same texts with every engine; compare each with PyTorch fp32."""
    probs = {}
    for engine in engines:
        log.info("quality   %-26s %d rows", engine.name, len(texts))
        engine.prepare(texts)
        engine()
        probs[engine.name] = engine.probs()
    reference = probs[REFERENCE]
    result = {
        "rows": len(texts),
        "positives": dict(zip(labels, truth.sum(0).tolist(), strict=True)),
        "engines": {},
    }
    for name, p in probs.items():
        # NaN has no rank: a non-finite engine gets no AUC, and an infinite gap.
        finite = first_non_finite_row(p) is None
        aucs = per_label_auc(truth, p, labels) if finite else dict.fromkeys(labels)
        result["engines"][name] = {
            "roc_auc_macro": macro(aucs),
            "roc_auc": aucs,
            "max_abs_diff": max_abs_diff(reference, p),
        }
    base = result["engines"][REFERENCE]["roc_auc_macro"]
    for row in result["engines"].values():
        row["roc_auc_change"] = (
            None if base is None or row["roc_auc_macro"] is None else row["roc_auc_macro"] - base
        )
    return result
