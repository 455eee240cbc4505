"""Check each exported variant against PyTorch on the same texts, under one finite-and-close rule.

Every variant is compared on the parity texts (and on the `--eval-data` sample when given); a
NaN or inf anywhere is an infinite gap, so it always fails. int8 has its own fidelity limits:
the largest and 99th-percentile probability gap, flag agreement at the model's thresholds, and
the macro ROC-AUC change when the sample has labels; bf16 (OpenVINO) is held to the same limits.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.errors import ParityError
from common.fidelity import agreement, max_abs_diff
from common.metrics import macro_auc
from common.sessions import open_variant
from export.parity import PARITY_TEXTS, ort_probs, parity_probs, predict_all, torch_probs
from export.quantize import Int8Limits

log = logging.getLogger("export")

PARITY_LIMITS = {"fp32": 1e-4, "optimized": 1e-4, "fp16": 1e-2}


class VariantChecker:
    """PyTorch's probabilities computed once; each variant's compared with them."""

    def __init__(self, tokenizer, model, *, sample=None, thresholds=None) -> None:
        self.tokenizer = tokenizer
        self.max_len = int(tokenizer.model_max_length)
        self.thresholds = thresholds
        self.texts, self.labels = sample if sample is not None else ([], None)
        self.reference = self._probs(lambda enc: torch_probs(model, enc))
        if not all(np.isfinite(p).all() for p in self.reference.values()):
            raise ParityError(
                "PyTorch's own probabilities are not finite (NaN or inf): the model folder holds "
                "broken weights; retrain it, or export an earlier folder. No ONNX model was written"
            )
        self.reference_auc = self._auc(self.reference["sample"])

    def _probs(self, run_one) -> dict[str, np.ndarray]:
        probs = {"parity": parity_probs(self.tokenizer, run_one, PARITY_TEXTS, self.max_len)}
        probs["sample"] = (
            predict_all(run_one, self.tokenizer, self.texts, self.max_len)
            if self.texts
            else np.empty((0, probs["parity"].shape[1]))
        )
        return probs

    def _auc(self, probs: np.ndarray) -> float | None:
        return macro_auc(self.labels, probs) if self.labels is not None else None

    def check(
        self, name: str, path: Path, provider: str, extra: dict | None = None
    ) -> tuple[dict, dict[str, np.ndarray]]:
        """The variant's record (parity gap, and sample figures if any) and its probabilities."""
        session = open_variant(name, path, provider, cpu_flag="--no-fp16")
        probs = self._probs(lambda enc: ort_probs(session, enc))
        entry = {
            "file": path.name,
            "provider": provider,
            "max_abs_diff": max_abs_diff(self.reference["parity"], probs["parity"]),
            "limit": PARITY_LIMITS.get(name),
            "size_mb": round(_size(path) / 2**20, 2),
            **(extra or {}),
        }
        if self.texts:
            entry["sample"] = self._sample_figures(probs["sample"])
        return entry, probs

    def _sample_figures(self, probs: np.ndarray) -> dict:
        figures = {
            "max_abs_diff": max_abs_diff(self.reference["sample"], probs),
            "roc_auc_macro": self._auc(probs),
        }
        if self.reference_auc is not None and figures["roc_auc_macro"] is not None:
            figures["roc_auc_change"] = figures["roc_auc_macro"] - self.reference_auc
        return figures

    def fidelity(self, probs: dict, limits: Int8Limits) -> tuple[dict, list[str]]:
        """int8 or bf16 against PyTorch: the figures, and the limits it breaks.

        The probability gaps cover every checked text; flag agreement covers the --eval-data
        rows only; it and the ROC-AUC change bind only when those rows are enough for one
        flipped flag not to break the limit alone (200 rows at 99.5%).
        """
        every = np.concatenate([probs["parity"], probs["sample"]])
        reference = np.concatenate([self.reference["parity"], self.reference["sample"]])
        figures = agreement(reference, every)
        figures["sample_rows"] = len(self.texts)
        figures["rows_to_bind"] = limits.rows_to_bind  # score's --variant auto reads both
        if self.thresholds is not None and len(self.texts):
            flags = agreement(self.reference["sample"], probs["sample"], self.thresholds)
            figures.update({k: v for k, v in flags.items() if "flag" in k})
        auc = self._auc(probs["sample"])
        if auc is not None and self.reference_auc is not None:
            figures["roc_auc_change"] = auc - self.reference_auc
        figures["limits"] = asdict(limits)
        return figures, limits.broken(figures)


def _size(path: Path) -> int:
    """Bytes on disk, an OpenVINO IR's weights file (.bin beside the .xml) included."""
    weights = path.with_suffix(".bin") if path.suffix == ".xml" else None
    return path.stat().st_size + (weights.stat().st_size if weights and weights.is_file() else 0)
