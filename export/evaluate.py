"""ROC-AUC of PyTorch and of each ONNX variant on a labelled sample (the int8 quality check)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from common.labelled import read_labelled_csv
from export.parity import ort_probs, torch_probs

log = logging.getLogger("export")


def read_labelled_sample(path: Path, text_column: str, labels: list[str], rows: int):
    """Texts and 0/1 labels of the first `rows` rows, under the one labelled-CSV reader's rules
    (`common.labelled`); rows labelled -1 (Jigsaw's unscored test rows) are left out and counted."""
    data = read_labelled_csv(
        path, text_column, labels, drop_unlabeled=True, limit=rows, flag="--eval-data"
    )
    if data.dropped_unlabeled:
        log.info("%s: %d rows labelled -1 (unscored) left out", path, data.dropped_unlabeled)
    return data.texts, data.labels.astype(np.int8)


def macro_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    scored = [
        roc_auc_score(labels[:, j], probs[:, j])
        for j in range(labels.shape[1])
        if 0 < labels[:, j].sum() < len(labels)
    ]
    return float(np.mean(scored)) if scored else float("nan")


def predict_all(run_one, tokenizer, texts: list[str], max_len: int, batch: int = 64) -> np.ndarray:
    """Probabilities for all texts, batched by length (pad to the longest in each batch)."""
    lengths = np.asarray([len(t) for t in texts])
    order = np.argsort(lengths)
    probs = np.empty((len(texts), 0))
    for start in range(0, len(texts), batch):
        rows = order[start : start + batch]
        enc = dict(
            tokenizer(
                [texts[r] for r in rows],
                padding=True,
                truncation=True,
                max_length=max_len,
                return_tensors="np",
            )
        )
        part = run_one(enc)
        if probs.shape[1] == 0:
            probs = np.empty((len(texts), part.shape[1]))
        probs[rows] = part
    return probs


def evaluate(model, tokenizer, sessions: dict, texts, labels, max_len: int) -> dict:
    """Macro ROC-AUC per engine, its change against PyTorch, and the largest probability gap."""
    ref = predict_all(lambda enc: torch_probs(model, enc), tokenizer, texts, max_len)
    result = {"rows": len(texts), "pytorch": {"roc_auc_macro": macro_auc(labels, ref)}}
    for name, session in sessions.items():
        probs = predict_all(lambda enc, s=session: ort_probs(s, enc), tokenizer, texts, max_len)
        auc = macro_auc(labels, probs)
        result[name] = {
            "roc_auc_macro": auc,
            "roc_auc_change": auc - result["pytorch"]["roc_auc_macro"],
            "max_abs_diff": float(np.abs(probs - ref).max()),
        }
    return result
