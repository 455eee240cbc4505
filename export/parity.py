"""Compare onnxruntime's probabilities with PyTorch's on the same tokenized batches."""

from __future__ import annotations

import numpy as np

from common.fidelity import sigmoid

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


def batches_for_parity(texts: list[str]) -> list[list[str]]:
    """Batch size 1 for a short and the longest text, then everything together (mixed lengths)."""
    return [[texts[0]], [texts[-1]], texts]


def torch_probs(model, encoded: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        inputs = {k: torch.from_numpy(v) for k, v in encoded.items()}
        return sigmoid(model(**inputs).logits.float().numpy())


def ort_probs(session, encoded: dict[str, np.ndarray]) -> np.ndarray:
    names = {i.name for i in session.get_inputs()}
    feed = {k: v for k, v in encoded.items() if k in names}
    if "token_type_ids" in names and "token_type_ids" not in feed:
        feed["token_type_ids"] = np.zeros_like(encoded["input_ids"])
    (logits,) = session.run(["logits"], feed)
    return sigmoid(logits)


def parity_probs(tokenizer, run_one, texts: list[str], max_len: int) -> np.ndarray:
    """Probabilities over the parity batches, stacked in batch order."""
    parts = []
    for batch in batches_for_parity(texts):
        encoded = dict(
            tokenizer(batch, padding=True, truncation=True, max_length=max_len, return_tensors="np")
        )
        parts.append(run_one(encoded))
    return np.concatenate(parts)


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
