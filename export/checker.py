"""Each exported variant against PyTorch on the parity texts and the --eval-data sample, in the
scorer's batches, and on one batch at each width the scorer can meet: NaN or inf is an infinite
gap; fp32, optimized and fp16 are held to their parity limit, the reduced variants to the
fidelity `Limits`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.batching import TextTokenizer, Tokens, batching_for, in_input_order, padded
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
# Every batch width up to here is checked, then every WIDTH_STEP-th up to the max length: a
# kernel can go wrong at one width alone (OpenVINO's int8 attention on AMX at exactly 32 tokens,
# docs/variants.md), and the checked rows' batches meet only some widths.
EVERY_WIDTH_TO = 128
WIDTH_STEP = 16


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
        self.widths = width_batches(self.tokens["parity"], self.tokens["sample"], max_len)
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
        tokens, batches = self.widths
        out["widths"] = sigmoid(
            np.concatenate([run(padded(tokens, rows, batching.pad_to)) for rows in batches])
        )
        return out

    def _widest_gap(self, probs: dict[str, np.ndarray], parts: tuple[str, ...]) -> float:
        return max(max_abs_diff(self.reference[p], probs[p]) for p in parts)

    def _auc(self, probs: np.ndarray) -> float | None:
        return macro_auc(self.labels, probs) if self.labels is not None else None

    def check(self, name: str, path: Path, provider: str, flags) -> tuple[dict, dict]:
        """The variant's record (parity gap, sample figures if any) and its probabilities."""
        session = open_variant(name, path, provider, flags=flags)
        probs = self._probs(lambda feed: session_logits(session, feed), provider)
        entry = {
            "file": path.name,
            "provider": provider,
            "max_abs_diff": self._widest_gap(probs, ("parity", "widths")),
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
        # the width batches' rows are cut texts: they bound the largest gap, not the p99
        figures["max_abs_diff"] = max(figures["max_abs_diff"], self._widest_gap(probs, ("widths",)))
        figures["batch_widths"] = len(self.widths[1])
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


def width_batches(parity: Tokens, sample: Tokens, max_len: int) -> tuple[Tokens, list]:
    """Tokens and row pairs for one batch per width from 2 tokens to `max_len` (every width up
    to EVERY_WIDTH_TO, then every WIDTH_STEP-th and `max_len`): the longest text cut to that
    width, beside the next longest cut to half of it, so each batch pads one row. A text cut to
    w tokens keeps its first w - 1 and its closing special token, as truncation would."""
    pool = [(tokens, i) for tokens in (sample, parity) for i in range(len(tokens))]
    pool.sort(key=lambda item: -int(item[0].lengths[item[1]]))  # stable: real texts first
    (long, i), (other, j) = pool[0], pool[1]
    last = min(max_len, int(long.lengths[i]))
    widths = [
        *range(2, min(last, EVERY_WIDTH_TO) + 1),
        *range(EVERY_WIDTH_TO + WIDTH_STEP, last, WIDTH_STEP),
    ]
    if last > EVERY_WIDTH_TO:
        widths.append(last)
    cut = [
        piece
        for w in widths
        for piece in (_cut(long, i, w), _cut(other, j, min(int(other.lengths[j]), max(2, w // 2))))
    ]
    lengths = np.array([len(c) for c in cut], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths[:-1])]).astype(np.int64)
    tokens = Tokens(ids=np.concatenate(cut), starts=starts, lengths=lengths)
    return tokens, [np.array([2 * k, 2 * k + 1]) for k in range(len(widths))]


def _cut(tokens: Tokens, row: int, width: int) -> np.ndarray:
    ids = tokens.ids[tokens.starts[row] : tokens.starts[row] + tokens.lengths[row]]
    return np.concatenate([ids[: width - 1], ids[-1:]]) if width < len(ids) else ids


def _size(path: Path) -> int:
    """Bytes on disk, an OpenVINO IR's weights file (.bin beside the .xml) included."""
    weights = path.with_suffix(".bin") if path.suffix == ".xml" else None
    return path.stat().st_size + (weights.stat().st_size if weights and weights.is_file() else 0)
