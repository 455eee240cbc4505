"""Each exported variant against PyTorch on the parity texts and the --eval-data sample, in the
scorer's batches: NaN or inf is an infinite gap; fp32, optimized and fp16 are held to their
parity limit, the reduced variants to the fidelity `Limits`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.batching import TextTokenizer, batching_for, in_input_order
from common.errors import ParityError
from common.metrics import agreement, macro_auc, max_abs_diff, sigmoid
from common.sessions import open_variant
from common.variants import VARIANTS, Limits

# Real-looking comments of mixed lengths: one token, a few words, sentences, and one long enough
# to be cut at the training max length. Written for this check, not taken from any data set.
PARITY_TEXTS = [
    "ok",
    "",
    "Thanks!",
    "Please stop reverting my edits without discussing them on the talk page first.",
    "You are an idiot and everyone on this project knows it.",
    "I added a citation to the 1998 census; the old figure was off by a few thousand people.",
    "Café, naïve, 東京, and an emoji 🙂 should all tokenize without trouble.",
    " ".join(["This long comment repeats itself so that it runs past the maximum length."] * 40),
]


def torch_logits(model, feed: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        ids, mask = (torch.from_numpy(feed[k]) for k in ("input_ids", "attention_mask"))
        return model(input_ids=ids, attention_mask=mask).logits.float().numpy()


def session_logits(session, feed: dict[str, np.ndarray]) -> np.ndarray:
    names = {i.name for i in session.get_inputs()}
    (logits,) = session.run(["logits"], {k: v for k, v in feed.items() if k in names})
    return logits


class VariantChecker:
    """PyTorch's probabilities computed once; each variant's compared with them."""

    def __init__(self, tokenizer_file: Path, max_len: int, model, *, sample=None, thresholds=None):
        self.tokenizer = TextTokenizer(tokenizer_file, max_len)
        self.max_len = max_len
        self.thresholds = thresholds
        self.texts, self.labels = sample if sample is not None else ([], None)
        self.tokens = {
            "parity": self.tokenizer.tokenize(PARITY_TEXTS),
            "sample": self.tokenizer.tokenize(self.texts),
        }
        self.reference = self._probs(lambda feed: torch_logits(model, feed), "cpu")
        if not all(np.isfinite(p).all() for p in self.reference.values()):
            raise ParityError(
                "PyTorch's own probabilities are not finite (NaN or inf): the model folder holds "
                "broken weights; retrain it, or export an earlier folder. No ONNX model was written"
            )
        self.reference_auc = self._auc(self.reference["sample"])

    def _probs(self, run, provider: str) -> dict[str, np.ndarray]:
        """Probabilities in input order, batched as the scorer batches on `provider`."""
        batching = batching_for(provider)
        out = {}
        for part, tokens in self.tokens.items():
            logits = in_input_order(tokens, run, batching) if len(tokens) else None
            out[part] = sigmoid(logits) if logits is not None else np.empty((0, 0))
        if not len(self.texts):
            out["sample"] = np.empty((0, out["parity"].shape[1]))
        return out

    def _auc(self, probs: np.ndarray) -> float | None:
        return macro_auc(self.labels, probs) if self.labels is not None else None

    def check(self, name: str, path: Path, provider: str, flags) -> tuple[dict, dict]:
        """The variant's record (parity gap, sample figures if any) and its probabilities."""
        session = open_variant(name, path, provider, flags=flags)
        probs = self._probs(lambda feed: session_logits(session, feed), provider)
        entry = {
            "file": path.name,
            "provider": provider,
            "max_abs_diff": max_abs_diff(self.reference["parity"], probs["parity"]),
            "limit": VARIANTS[name].parity_limit,
            "size_mb": round(_size(path) / 2**20, 2),
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

    def fidelity(self, probs: dict, limits: Limits) -> tuple[dict, list[str]]:
        """A reduced variant against PyTorch: the figures, and the limits it breaks.

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
