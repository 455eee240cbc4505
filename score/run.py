"""The local engine, `run()`: stream a CSV or Parquet file through the exported model into one
Parquet file."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common.errors import UserError
from score.input import Chunk, iter_chunks, open_input
from score.model_folder import read_model_folder, read_thresholds
from score.output import check_output_path, chunk_table, output_schema
from score.predict import Scorer, Tokens
from score.progress import Progress, Resumed, input_facts, model_facts, tool_version
from score.run_pipeline import Pipeline

log = logging.getLogger("score")

READING = ("text_column", "id_column", "encoding")  # the options open_input takes


@dataclass(frozen=True)
class Options:
    """What both engines take besides inputs and output, with the command line's defaults.
    `id_column=None` writes a 0-based `row` column instead of ids; `batch_size=None` is 64 on
    the CPU and 256 on CUDA; an existing output is replaced only with `force`."""

    model_dir: Path = Path("artifacts/onnx")
    text_column: str = "comment_text"
    id_column: str | None = "id"
    provider: str = "auto"
    variant: str = "auto"
    batch_size: int | None = None
    max_len: int | None = None
    chunk_rows: int = 50_000
    thresholds: bool = False
    encoding: str = "utf8"
    threads: int | None = None
    quiet: bool = False
    force: bool = False

    def pick(self, *names: str) -> dict:
        return {name: getattr(self, name) for name in names}


def run(*, input_path: Path, output_path: Path, **options) -> dict:
    """Score every row (`options`: Options' fields); return the summary (rows, seconds,
    rows_per_s, provider, variant, ...)."""
    o = Options(**options)
    source = open_input(input_path, **o.pick(*READING))
    check_output_path(output_path, input_path, o.force)
    folder = read_model_folder(o.model_dir)
    cut = read_thresholds(folder) if o.thresholds else None
    schema = output_schema(o.id_column or "row", source.id_type, folder.labels, o.thresholds)
    scorer = Scorer(
        o.model_dir, **o.pick("variant", "provider", "batch_size", "max_len", "threads")
    )
    log.info(
        f"scoring {input_path} -> {output_path}: chunks of {o.chunk_rows} rows, batches of "
        f"{scorer.batch_size}{_budget(scorer.batching.max_tokens)}, provider {scorer.provider}, "
        f"variant {scorer.variant}"
    )
    facts = input_facts(input_path)
    identity = run_identity(o, facts, scorer.variant, scorer.labels, scorer.max_len, cut)
    progress = Progress(output_path, identity, o.force)
    started = time.perf_counter()
    try:
        counts = _score_file(source, scorer, progress, schema, cut, o)
        check_unchanged(input_path, facts)
        made_by = {**identity, "precision": scorer.precision, "version": tool_version()}
        made_by["input"] = {**identity["input"], "rows": counts["rows"]}
        progress.assemble(output_path, schema, made_by)
    except UserError:  # bad input, a full disk ...: nothing half-written is left behind
        progress.discard()
        raise
    seconds = time.perf_counter() - started
    return {
        "rows": counts["rows"],
        "resumed_rows": counts["resumed"],
        "seconds": round(seconds, 3),
        # The rows scored by this run: resumed ones took no time here.
        "rows_per_s": round((counts["rows"] - counts["resumed"]) / seconds, 1),
        "provider": scorer.provider,
        "variant": scorer.variant,
        "precision": scorer.precision,
        "variant_reason": scorer.variant_reason,
        "empty_texts": counts["empty"],
        "output": str(output_path),
        "batch_size": scorer.batch_size,
        "batch_tokens": scorer.batching.max_tokens,  # None: no token budget (CUDA)
        "max_len": scorer.max_len,
        "chunk_rows": o.chunk_rows,
        "stage_seconds": counts["stage_seconds"],
    }


def _budget(max_tokens: int | None) -> str:
    return f" rows (at most {max_tokens:,} tokens)" if max_tokens else " rows"


def run_identity(o: Options, facts, variant: str, labels: list, max_len: int, cut) -> dict:
    """What a run's progress belongs to (score/progress.py), for both engines: progress made
    with another input (`facts`), model, variant, labels, thresholds or chunking is not mixed in."""
    return {
        "input": facts,
        "model": model_facts(o.model_dir),
        "variant": variant,
        "labels": labels,
        "max_len": max_len,
        "thresholds": None if cut is None else [float(t) for t in cut],
        **o.pick("text_column", "id_column", "encoding", "chunk_rows"),
    }


def check_unchanged(path: Path, facts: dict) -> None:
    """The input read is the input named: a file replaced or rewritten meanwhile is refused."""
    try:
        now = input_facts(path)
    except OSError:
        now = None
    if now != facts:
        raise UserError(
            f"{path} changed or disappeared while it was being scored; nothing was written. "
            "Score it again once nothing writes to it"
        )


def _score_file(source, scorer, progress: Progress, schema, cut, o: Options) -> dict:
    counts = {"rows": 0, "empty": 0, "resumed": 0}
    quiet = True if o.quiet else None  # None: a bar only on a terminal
    bar = tqdm(total=source.rows, unit="rows", unit_scale=True, file=sys.stderr, disable=quiet)

    def tokenize(chunk: Chunk) -> tuple[Chunk, Tokens | Resumed | None]:
        if (done := progress.resumed(chunk.start)) is not None:
            return replace(chunk, texts=[]), done  # an earlier run scored it
        tokens = scorer.tokenize(chunk.texts, stop=pipeline.stop)  # None once stopped
        return replace(chunk, texts=[]), tokens  # the texts are done with

    def predict(item: tuple[Chunk, Tokens | Resumed]) -> tuple[Chunk, np.ndarray | Resumed]:
        chunk, tokens = item
        if isinstance(tokens, Resumed):
            return item
        return chunk, scorer.predict_tokens(tokens, first_row=chunk.start)

    def write(item: tuple[Chunk, np.ndarray | Resumed]) -> None:
        chunk, probs = item
        if isinstance(probs, Resumed):
            empty, counts["resumed"] = probs.empty, counts["resumed"] + probs.rows
            bar.set_postfix(resumed=counts["resumed"])
        else:
            empty = int(chunk.blank.sum())
            progress.save(chunk.start, chunk_table(schema, chunk.ids, probs, cut), empty)
        counts["rows"] += len(chunk.ids)
        counts["empty"] += empty
        bar.update(len(chunk.ids))

    with bar:
        pipeline = Pipeline(iter_chunks(source, o.chunk_rows), tokenize, predict, write)
        pipeline.run()
    counts["stage_seconds"] = {k: round(v, 3) for k, v in pipeline.busy.items()}
    return counts


def summary_line(summary: dict) -> str:
    count = summary.get("workers")
    why = summary.get("variant_reason")
    workers = f" ({count} Ray worker{'s' if count != 1 else ''})" if count else ""
    resumed = summary.get("resumed_rows")
    return (
        f"scored {summary['rows']} rows in {summary['seconds']:.1f} s "
        f"({summary['rows_per_s']:.0f} rows/s) on {summary['provider']}{workers} with the "
        f"{summary['variant']} model ({summary['precision']}{f'; {why}' if why else ''}); "
        f"{summary['empty_texts']} rows with empty text; "
        f"{f'resumed {resumed} rows scored by an earlier run; ' if resumed else ''}"
        f"wrote {summary['output']}"
    )
