"""ROC-AUC (macro and per label) of PyTorch and each ONNX variant on a labelled CSV."""

from __future__ import annotations

import logging

import numpy as np

from common.metrics import first_non_finite_row, macro, max_abs_diff, per_label_auc

log = logging.getLogger("benchmarks")

REFERENCE = "pytorch-fp32-bucketed"


def evaluate(engines: list, texts: list[str], truth: np.ndarray, labels: list[str]) -> dict:
    """Score the same texts with every engine; compare each with PyTorch fp32."""
    probs = {}
    for engine in engines:
        log.info("quality   %-26s %d rows", engine.name, len(texts))
        engine.prepare(texts)
        engine()
        probs[engine.name] = engine.probs()
    reference, engines = probs[REFERENCE], {}
    for name, p in probs.items():
        # NaN has no rank: a non-finite engine gets no AUC, and an infinite gap.
        finite = first_non_finite_row(p) is None
        aucs = per_label_auc(truth, p, labels) if finite else dict.fromkeys(labels)
        gap = max_abs_diff(reference, p)
        engines[name] = {"roc_auc_macro": macro(aucs), "roc_auc": aucs, "max_abs_diff": gap}
    base = engines[REFERENCE]["roc_auc_macro"]
    for row in engines.values():
        auc = row["roc_auc_macro"]
        row["roc_auc_change"] = None if base is None or auc is None else auc - base
    positives = dict(zip(labels, truth.sum(0).tolist(), strict=True))
    return {"rows": len(texts), "positives": positives, "engines": engines}
