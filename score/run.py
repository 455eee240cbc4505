"""The local engine, `run()`: score a CSV or Parquet file with the exported model into one Parquet
file, streaming.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from score.input import Chunk, iter_chunks, open_input
from score.model_folder import read_model_folder, read_thresholds
from score.output import ParquetOutput, check_output_path, chunk_table, output_schema
from score.predict import Scorer, Tokens
from score.run_pipeline import Pipeline

log = logging.getLogger("score")


def run(
    *,
    input_path: Path,
    output_path: Path,
    model_dir: Path = Path("artifacts/onnx"),
    text_column: str = "comment_text",
    id_column: str | None = "id",
    provider: str = "auto",
    variant: str = "auto",
    batch_size: int | None = None,
    max_len: int | None = None,
    chunk_rows: int = 50_000,
    thresholds: bool = False,
    encoding: str = "utf8",
    threads: int | None = None,
    quiet: bool = False,
    force: bool = False,
) -> dict:
    """Score every row; return the summary (rows, seconds, rows_per_s, provider, variant, ...).

    `id_column=None` writes a 0-based `row` column instead of ids; `batch_size=None` is 64 on
    the CPU and 256 on CUDA; an existing output is replaced only with `force`.
    """
    source = open_input(input_path, text_column=text_column, id_column=id_column, encoding=encoding)
    check_output_path(output_path, input_path, force)
    folder = read_model_folder(model_dir)
    cut = read_thresholds(folder) if thresholds else None
    schema = output_schema(id_column or "row", source.id_type, folder.labels, thresholds)
    scorer = Scorer(
        model_dir,
        variant=variant,
        provider=provider,
        batch_size=batch_size,
        max_len=max_len,
        threads=threads,
    )
    log.info(
        f"scoring {input_path} -> {output_path}: chunks of {chunk_rows} rows, batches of "
        f"{scorer.batch_size}, provider {scorer.provider}, variant {scorer.variant}"
    )
    started = time.perf_counter()
    counts = _score_file(source, scorer, output_path, schema, cut, chunk_rows, quiet)
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
        "chunk_rows": chunk_rows,
    }


def _score_file(source, scorer, output_path, schema, cut, chunk_rows: int, quiet: bool) -> dict:
    """Stream the chunks through the thread pipeline into the output; returns the counts."""
    counts = {"rows": 0, "empty": 0}
    bar = tqdm(
        total=source.rows,
        unit="rows",
        unit_scale=True,
        file=sys.stderr,
        disable=True if quiet else None,  # None: only on a terminal
    )

    def tokenize(chunk: Chunk) -> tuple[Chunk, Tokens | None]:
        tokens = scorer.tokenize(chunk.texts, stop=pipeline.stop)  # None once stopped
        return replace(chunk, texts=[]), tokens  # the texts are done with

    def predict(item: tuple[Chunk, Tokens]) -> tuple[Chunk, np.ndarray]:
        chunk, tokens = item
        return chunk, scorer.predict_tokens(tokens, first_row=chunk.start)

    with bar, ParquetOutput(output_path, schema) as out:

        def write(item: tuple[Chunk, np.ndarray]) -> None:
            chunk, probs = item
            out.write(chunk_table(schema, chunk.ids, probs, cut))
            counts["rows"] += len(chunk.ids)
            counts["empty"] += chunk.empty
            bar.update(len(chunk.ids))

        pipeline = Pipeline(iter_chunks(source, chunk_rows), tokenize, predict, write)
        pipeline.run()
    return counts


def summary_line(summary: dict) -> str:
    count = summary.get("workers")
    workers = f" ({count} Ray worker{'s' if count != 1 else ''})" if count else ""
    return (
        f"scored {summary['rows']} rows in {summary['seconds']:.1f} s "
        f"({summary['rows_per_s']:.0f} rows/s) on {summary['provider']}{workers} with the "
        f"{summary['variant']} model ({summary['precision']}){_reason(summary)}; "
        f"{summary['empty_texts']} rows with "
        f"empty text; wrote {summary['output']}"
    )


def _reason(summary: dict) -> str:
    why = summary.get("variant_reason")  # the Ray engine's workers each choose on their node
    return f" ({why})" if why else ""
