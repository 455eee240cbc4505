"""Warm up, then time every engine on the same texts, round-robin, and summarise the repeats."""

from __future__ import annotations

import logging
import statistics
import time

import numpy as np
import torch

from common.batching import Batching, cuts, padded_width

log = logging.getLogger("benchmarks")


def synchronizer(device: str):
    """`torch.cuda.synchronize` before each clock read on CUDA, so queued kernels are counted."""
    return torch.cuda.synchronize if device == "cuda" else lambda: None


def warm_up(engines: list, texts: list[str], rows: int) -> None:
    """One call per engine on an evenly spread subset (short and long texts alike), or on every
    text for an engine that compiles per shape (`warm_on_all`), whose call time is kept."""
    picked = [texts[i] for i in np.linspace(0, len(texts) - 1, min(rows, len(texts)), dtype=int)]
    for engine in engines:
        these = texts if getattr(engine, "warm_on_all", False) else picked
        log.info("warm-up   %-26s %d rows", engine.name, len(these))
        engine.prepare(these)
        start = time.perf_counter()
        engine()
        if these is texts:
            engine.info["first_call_s"] = round(time.perf_counter() - start, 1)


def time_engines(engines: list, texts: list[str], repeats: int, device: str) -> dict:
    """Seconds per repeat for each engine; repeats interleave, so drifting load hits all alike."""
    sync = synchronizer(device)
    seconds: dict[str, list[float]] = {e.name: [] for e in engines}
    for repeat in range(1, repeats + 1):
        for engine in engines:
            engine.prepare(texts)
            sync()
            start = time.perf_counter()
            engine()
            sync()
            # The end-to-end engine reports its own clock (session load left out).
            took = getattr(engine, "own_seconds", None) or time.perf_counter() - start
            seconds[engine.name].append(took)
            rate = len(texts) / took
            log.info(
                "repeat %d/%d %-26s %8.2f s %9.1f rows/s", repeat, repeats, engine.name, took, rate
            )
    return seconds


def summarize(seconds: list[float], rows: int, tokens: int) -> dict:
    """Median and spread of the repeats, as seconds and as rows/s and tokens/s."""
    median = statistics.median(seconds)
    return {
        "seconds": [round(s, 4) for s in seconds],
        "median_s": median,
        "min_s": min(seconds),
        "max_s": max(seconds),
        "p90_s": float(np.percentile(seconds, 90)),
        "spread_pct": 100 * (max(seconds) - min(seconds)) / median,
        "rows_per_s": rows / median,
        "rows_per_s_min": rows / max(seconds),
        "rows_per_s_max": rows / min(seconds),
        "tokens_per_s": tokens / median,
    }


def token_profile(tokenizer, texts: list[str], max_len: int, batching: Batching) -> dict:
    """Token counts and padding of each batching, and what tokenization alone costs."""
    start = time.perf_counter()
    ids = tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]
    batch_s = time.perf_counter() - start
    start = time.perf_counter()
    for text in texts:
        tokenizer.encode_plus(text, max_length=max_len, padding="max_length", truncation=True)
    one_by_one_s = time.perf_counter() - start
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    full = tokenizer(texts, truncation=False, verbose=False)["input_ids"]
    ordered = np.sort(lengths)  # the scorer's batches: consecutive lengths in sorted order
    batches = list(cuts(ordered, batching))
    bucketed = sum(
        padded_width(int(ordered[stop - 1]), batching.pad_to) * (stop - start)
        for start, stop in batches
    )
    tokens = int(lengths.sum())
    return {
        "tokens": tokens,
        "batches": len(batches),
        "median_tokens": float(np.median(lengths)),
        "truncated_share": float(np.mean([len(f) > max_len for f in full])),
        "pad_factor_padded": len(texts) * max_len / tokens,
        "pad_factor_bucketed": bucketed / tokens,
        "tokenize_batch_rows_per_s": len(texts) / batch_s,
        "tokenize_one_by_one_rows_per_s": len(texts) / one_by_one_s,
    }
