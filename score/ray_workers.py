"""What the Ray engine's workers run: the local input, tokenizer and Scorer, for `map_batches`.
Plain Python with no Ray import, so these are the code paths the local scorer's tests cover.
Stage 1 (CPU tasks) reads an input in chunks and tokenizes them; stage 2 (one actor per worker,
one GPU each on a GPU cluster) runs the model and writes each chunk as a Parquet part. Internal
columns: `_input` (the input's stem), `_row` (0-based row in that input), `_last` (the input's
final row), `_blank` (empty text), `_id`, `_tokens` (token ids, ragged).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from score.input import iter_chunks, open_input
from score.model_folder import read_model_folder, read_thresholds
from score.output import chunk_table, output_schema, write_part
from score.predict import Scorer, TextTokenizer, Tokens

CPU_THREADS_PER_WORKER = 4  # onnxruntime threads of one worker, fewer on a node with fewer CPUs


@functools.lru_cache(maxsize=4)
def _tokenizer(tokenizer_file: str, max_len: int) -> TextTokenizer:
    return TextTokenizer(Path(tokenizer_file), max_len)  # once per worker process


def read_inputs(
    batch: pa.Table, *, options: dict, chunk_rows: int, tokenizer_file: str, max_len: int
) -> Iterator[pa.Table]:
    """For each input path in `batch`, its tokenized chunks in order, streamed one at a time."""
    tokenizer = _tokenizer(tokenizer_file, max_len)
    for path in batch.column("path").to_pylist():
        chunks = iter_chunks(open_input(Path(path), **options), chunk_rows)
        chunk = next(chunks)  # an input with no rows raises the local scorer's message here
        for following in chunks:  # one chunk of look-ahead tells which one is the last
            yield _chunk_table(Path(path).stem, chunk, tokenizer, last=False)
            chunk = following
        yield _chunk_table(Path(path).stem, chunk, tokenizer, last=True)


def _chunk_table(stem: str, chunk, tokenizer: TextTokenizer, *, last: bool) -> pa.Table:
    rows = len(chunk.ids)
    ends = np.zeros(rows, dtype=bool)
    ends[-1] = last
    return pa.table(
        {
            "_input": pa.array([stem] * rows, pa.string()),
            "_row": pa.array(np.arange(chunk.start, chunk.start + rows, dtype=np.int64)),
            "_last": pa.array(ends),
            "_blank": pa.array(chunk.blank),
            "_id": chunk.ids,
            "_tokens": tokens_to_arrow(tokenizer.tokenize(chunk.texts)),
        }
    )


def tokens_to_arrow(tokens: Tokens) -> pa.LargeListArray:
    offsets = np.append(tokens.starts, tokens.starts[-1] + tokens.lengths[-1] if len(tokens) else 0)
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(tokens.ids))


def tokens_from_arrow(column: pa.ChunkedArray | pa.Array) -> Tokens:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    offsets = column.offsets.to_numpy().astype(np.int64)
    ids = column.values.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    starts = offsets[:-1] - offsets[0]  # a sliced array's offsets need not start at 0
    return Tokens(ids=ids[offsets[0] : offsets[-1]], starts=starts, lengths=np.diff(offsets))


class ChunkScorer:
    """One per worker: loads the model once, scores batches, writes each input's rows as a part.
    The driver passes the provider and variant it chose for the whole run; `Scorer` honours
    them or raises the single-machine UserError (no silent fallback to another precision)."""

    def __init__(self, *, staging: str, model_dir: str, id_name: str, thresholds: bool, **scorer):
        self.staging = Path(staging)
        folder = read_model_folder(Path(model_dir))
        self.cut = read_thresholds(folder) if thresholds else None
        self.id_name = id_name
        threads = scorer.pop("threads") or min(CPU_THREADS_PER_WORKER, os.cpu_count() or 1)
        self.scorer = Scorer(Path(model_dir), threads=threads, **scorer)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Score the batch; return one summary row per part written."""
        probs = self.scorer.predict_tokens(tokens_from_arrow(batch.column("_tokens")))
        inputs = batch.column("_input")
        parts = []
        for stem in pc.unique(inputs).to_pylist():
            rows = np.flatnonzero(pc.equal(inputs, stem).to_numpy(zero_copy_only=False))
            row_numbers = batch.column("_row").to_numpy()[rows]
            rows = rows[np.argsort(row_numbers, kind="stable")]
            # A batch may join blocks that are not neighbours in the input: one part per run.
            breaks = np.flatnonzero(np.diff(np.sort(row_numbers)) != 1) + 1
            parts += [self._write(stem, batch.take(r), probs[r]) for r in np.split(rows, breaks)]
        return pa.Table.from_pylist(parts)

    def _write(self, stem: str, rows: pa.Table, probs: np.ndarray) -> dict:
        ids = rows.column("_id").combine_chunks()
        schema = output_schema(self.id_name, ids.type, self.scorer.labels, self.cut is not None)
        first = int(rows.column("_row")[0].as_py())
        path = write_part(self.staging, stem, first, chunk_table(schema, ids, probs, self.cut))
        return {
            "input": stem,
            "first_row": first,
            "rows": rows.num_rows,
            "blank": int(pc.sum(rows.column("_blank")).as_py() or 0),
            "last": bool(pc.any(rows.column("_last")).as_py()),
            "path": path,
        }
