"""Batch tokenization with the fast tokenizer, keeping each comment's untruncated length."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    for start in range(0, len(texts), TOKENIZE_BATCH):
        batch = texts[start : start + TOKENIZE_BATCH]
        # No special tokens and no truncation here, so the true length is known for the summary.
        raw = tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]
        for tokens in raw:
            lengths.append(len(tokens) + n_special)
            ids.append(tokenizer.build_inputs_with_special_tokens(tokens[:keep]))
    return Encoded(ids, np.asarray(lengths, dtype=np.int64))
