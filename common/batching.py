"""Texts to model inputs, one way for every caller (scorer, export's checks and calibration,
benchmarks), so every fidelity figure is measured on the batches the scorer builds: tokenize
(`tokenizers` alone, the ids of `AutoTokenizer` with truncation), order by token count, cut into
batches, pad each to its longest text, and put the results back in input order. On the CPU a
batch of long texts holds fewer rows: its tokens (rows x padded width) stay within a budget, so
memory does not depend on how long the longest comments are."""

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
# A CPU batch holds at most its row count x this many tokens (rows x padded width). Attention's
# scores grow with rows x width^2: 64 rows at width 512 took MiniLM to 1.7 GiB (onnxruntime)
# and 3.1 GiB (OpenVINO int8); and smaller batches of long comments ran faster, not slower
# (docs/results.md, "The CPU batch budget").
CPU_TOKENS_PER_ROW = 32


@dataclass(frozen=True)
class Batching:
    """At most `size` rows per batch, padded to a multiple of `pad_to`, and at most `max_tokens`
    rows x padded width (None: no such limit)."""

    size: int
    pad_to: int = 1
    max_tokens: int | None = None


def batching_for(device: str, size: int | None = None) -> Batching:
    """The scorer's batches on `device` ("cpu" or "cuda"); `size` None: its default rows."""
    if device == "cuda":  # GPU memory is not what limits these batches
        return Batching(size or CUDA_BATCH_SIZE, CUDA_PAD_TO)
    size = size or CPU_BATCH_SIZE
    return Batching(size, 1, size * CPU_TOKENS_PER_ROW)


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
    width = padded_width(int(lengths.max()), pad_to)
    positions = np.arange(width)
    mask = positions < lengths[:, None]
    gather = np.minimum(tokens.starts[rows, None] + positions, max(len(tokens.ids) - 1, 0))
    input_ids = np.where(mask, tokens.ids[gather], 0).astype(np.int64)
    return {
        "input_ids": input_ids,
        "attention_mask": mask.astype(np.int64),
        "token_type_ids": np.zeros_like(input_ids),
    }


def padded_width(longest, pad_to: int):
    """A batch's width (an int, or an array of them): its longest text, rounded up to a
    multiple of `pad_to`."""
    return -(-longest // pad_to) * pad_to


def batches(
    tokens: Tokens, batching: Batching
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(rows, inputs) per batch: rows sorted by token count (stable), each batch padded to its
    longest, so similar lengths share a batch and little is padding."""
    order = np.argsort(tokens.lengths, kind="stable")
    for start, stop in cuts(tokens.lengths[order], batching):
        rows = order[start:stop]
        yield rows, padded(tokens, rows, batching.pad_to)


def cuts(sorted_lengths: np.ndarray, batching: Batching) -> Iterator[tuple[int, int]]:
    """(start, stop) of each batch over ascending lengths: the most rows `batching` allows, and
    one row even when it alone is over the token budget."""
    start, total = 0, len(sorted_lengths)
    while start < total:
        rows = min(batching.size, total - start)
        if batching.max_tokens:  # rows x width grows with rows: count the sizes that fit
            widths = padded_width(sorted_lengths[start : start + rows], batching.pad_to)
            fits = np.arange(1, rows + 1) * widths <= batching.max_tokens
            rows = max(1, int(fits.sum()))
        yield start, start + rows
        start += rows


def in_input_order(
    tokens: Tokens, run: Callable[[dict[str, np.ndarray]], np.ndarray], batching: Batching
) -> np.ndarray:
    """`run` over `batches`, its outputs (rows x labels) put back in input order."""
    out = None
    for rows, feed in batches(tokens, batching):
        part = run(feed)
        if out is None:
            out = np.empty((len(tokens), *part.shape[1:]), dtype=part.dtype)
        out[rows] = part
    return out if out is not None else np.empty((0, 0))
