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

from score.input import Chunk, iter_chunks, open_input
from score.model_folder import read_model_folder, read_thresholds
from score.output import check_output_path, chunk_table, output_schema, parquet_output
from score.predict import Scorer, Tokens
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
        f"{scorer.batch_size}, provider {scorer.provider}, variant {scorer.variant}"
    )
    started = time.perf_counter()
    counts = _score_file(source, scorer, output_path, schema, cut, o)
    seconds = time.perf_counter() - started
    return {
        "rows": counts["rows"],
        "seconds": round(seconds, 3),
        "rows_per_s": round(counts["rows"] / seconds, 1),
        "provider": scorer.provider,
        "variant": scorer.variant,
        "precision": scorer.precision,
        "variant_reason": scorer.variant_reason,
        "empty_texts": counts["empty"],
        "output": str(output_path),
        "batch_size": scorer.batch_size,
        "max_len": scorer.max_len,
        "chunk_rows": o.chunk_rows,
    }


def _score_file(source, scorer, output_path, schema, cut, o: Options) -> dict:
    counts = {"rows": 0, "empty": 0}
    quiet = True if o.quiet else None  # None: a bar only on a terminal
    bar = tqdm(total=source.rows, unit="rows", unit_scale=True, file=sys.stderr, disable=quiet)

    def tokenize(chunk: Chunk) -> tuple[Chunk, Tokens | None]:
        tokens = scorer.tokenize(chunk.texts, stop=pipeline.stop)  # None once stopped
        return replace(chunk, texts=[]), tokens  # the texts are done with

    def predict(item: tuple[Chunk, Tokens]) -> tuple[Chunk, np.ndarray]:
        chunk, tokens = item
        return chunk, scorer.predict_tokens(tokens, first_row=chunk.start)

    with bar, parquet_output(output_path, schema) as out:

        def write(item: tuple[Chunk, np.ndarray]) -> None:
            chunk, probs = item
            table = chunk_table(schema, chunk.ids, probs, cut)
            out.write_table(table, row_group_size=max(len(table), 1))  # one group per chunk
            counts["rows"] += len(chunk.ids)
            counts["empty"] += int(chunk.blank.sum())
            bar.update(len(chunk.ids))

        pipeline = Pipeline(iter_chunks(source, o.chunk_rows), tokenize, predict, write)
        pipeline.run()
    return counts


def summary_line(summary: dict) -> str:
    count = summary.get("workers")
    why = summary.get("variant_reason")
    workers = f" ({count} Ray worker{'s' if count != 1 else ''})" if count else ""
    return (
        f"scored {summary['rows']} rows in {summary['seconds']:.1f} s "
        f"({summary['rows_per_s']:.0f} rows/s) on {summary['provider']}{workers} with the "
        f"{summary['variant']} model ({summary['precision']}){f' ({why})' if why else ''}; "
        f"{summary['empty_texts']} rows with empty text; wrote {summary['output']}"
    )
