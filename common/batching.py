"""Texts to model inputs, one way for every caller (scorer, export's checks and calibration,
benchmarks), so every fidelity figure is measured on the batches the scorer builds: tokenize
(`tokenizers` alone, the ids of `AutoTokenizer` with truncation), order by token count, cut into
batches, pad each to its longest text, and put the results back in input order."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

TOKENIZE_AT_ONCE = 1024  # Encoding objects cost ~8 KB each: flatten them every 1024 texts
CPU_BATCH_SIZE = 64
CUDA_BATCH_SIZE = 256
CUDA_PAD_TO = 8  # a width that is a multiple of 8 keeps fp16 matmuls on tensor cores


@dataclass
class Tokens:
    """Token ids of many texts, ragged: text i is `ids[starts[i] : starts[i] + lengths[i]]`."""

    ids: np.ndarray  # int32, all texts concatenated
    starts: np.ndarray  # int64
    lengths: np.ndarray  # int64, special tokens included, at most max_len

    def __len__(self) -> int:
        return len(self.lengths)


class TextTokenizer:
    """The model's fast tokenizer, truncating to `max_len`, without padding (batches pad later)."""

    def __init__(self, tokenizer_file: Path, max_len: int) -> None:
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_padding()  # padding happens per batch, to the longest text in it
        self.tokenizer.enable_truncation(max_length=max_len)
        self.max_len = max_len

    def tokenize(self, texts: list[str], stop: threading.Event | None = None) -> Tokens | None:
        """Token ids for each text, flattened to save memory; None as soon as `stop` is set
        (checked every TOKENIZE_AT_ONCE texts), so an interrupted run never waits for it all."""
        ids, lengths = [], []
        for start in range(0, len(texts), TOKENIZE_AT_ONCE):
            if stop is not None and stop.is_set():
                return None
            encodings = self.tokenizer.encode_batch_fast(texts[start : start + TOKENIZE_AT_ONCE])
            lengths.extend(len(e) for e in encodings)
            ids.extend(np.asarray(e.ids, dtype=np.int32) for e in encodings)
        lengths = np.asarray(lengths, dtype=np.int64)
        starts = np.zeros_like(lengths)
        np.cumsum(lengths[:-1], out=starts[1:])
        flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32)
        return Tokens(ids=flat, starts=starts, lengths=lengths)


def padded(tokens: Tokens, rows: np.ndarray, pad_to: int = 1) -> dict[str, np.ndarray]:
    """int64 inputs for `rows`, padded with 0 to the longest of them (rounded up to `pad_to`);
    token_type_ids are all 0 (one segment per text)."""
    lengths = tokens.lengths[rows]
    width = -(-int(lengths.max()) // pad_to) * pad_to
    positions = np.arange(width)
    mask = positions < lengths[:, None]
    gather = np.minimum(tokens.starts[rows, None] + positions, max(len(tokens.ids) - 1, 0))
    input_ids = np.where(mask, tokens.ids[gather], 0).astype(np.int64)
    return {
        "input_ids": input_ids,
        "attention_mask": mask.astype(np.int64),
        "token_type_ids": np.zeros_like(input_ids),
    }


def batches(
    tokens: Tokens, batch_size: int, pad_to: int = 1
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(rows, inputs) per batch: rows sorted by token count (stable), each batch padded to its
    longest, so similar lengths share a batch and little is padding."""
    order = np.argsort(tokens.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        yield rows, padded(tokens, rows, pad_to)


def in_input_order(
    tokens: Tokens,
    run: Callable[[dict[str, np.ndarray]], np.ndarray],
    batch_size: int = CPU_BATCH_SIZE,
    pad_to: int = 1,
) -> np.ndarray:
    """`run` over `batches`, its outputs (rows x labels) put back in input order."""
    out = None
    for rows, feed in batches(tokens, batch_size, pad_to):
        part = run(feed)
        if out is None:
            out = np.empty((len(tokens), *part.shape[1:]), dtype=part.dtype)
        out[rows] = part
    return out if out is not None else np.empty((0, 0))
