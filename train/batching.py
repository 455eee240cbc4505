"""Training inputs: comments tokenized in batches (keeping each one's untruncated length), then
length-grouped batches with dynamic padding: similar lengths together, batch order shuffled."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer

# Large batches amortise the Python overhead; the Rust tokenizer parallelises inside each call.
TOKENIZE_BATCH = 4096


@dataclass
class Encoded:
    input_ids: list[list[int]]  # truncated to max_len, special tokens included
    full_lengths: np.ndarray  # token count before truncation, special tokens included


def encode(tokenizer, texts: list[str], max_len: int) -> Encoded:
    """Tokenize in batches; truncate with the tokenizer's own special-token layout."""
    n_special = tokenizer.num_special_tokens_to_add(pair=False)
    keep = max_len - n_special
    ids, lengths = [], []
    # A private copy of the Rust tokenizer with no padding or truncation of its own (some
    # tokenizer.json files, MiniLM's among them, pad every text to 128 tokens).
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    for start in range(0, len(texts), TOKENIZE_BATCH):
        batch = texts[start : start + TOKENIZE_BATCH]
        # No special tokens and no truncation here, so the true length is known for the summary.
        # The Rust backend directly (no offsets, no BatchEncoding): about 1.5x the plain call.
        for encoding in backend.encode_batch_fast(batch, add_special_tokens=False):
            tokens = encoding.ids
            lengths.append(len(tokens) + n_special)
            ids.append(tokenizer.build_inputs_with_special_tokens(tokens[:keep]))
    return Encoded(ids, np.asarray(lengths, dtype=np.int64))


# Sort within windows of this many batches: long enough to group lengths well, short enough
# that each epoch still sees a different mix of comments in each batch.
WINDOW_BATCHES = 50


def length_grouped_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffle, sort each window by length, cut into batches, then shuffle the batch order."""
    order = rng.permutation(len(lengths))
    window = batch_size * WINDOW_BATCHES
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Deterministic batches for evaluation: longest first, so memory peaks early."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(
    input_ids: list[list[int]], rows: np.ndarray, pad_id: int, multiple_of: int = 1
) -> dict[str, torch.Tensor]:
    """Pad the chosen rows to the longest among them (rounded up to `multiple_of`)."""
    longest = max(len(input_ids[r]) for r in rows)
    width = -(-longest // multiple_of) * multiple_of
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        seq = input_ids[r]
        ids[i, : len(seq)] = torch.as_tensor(seq)
        mask[i, : len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask}
