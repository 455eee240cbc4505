"""What the Ray engine's workers run: the local input, tokenizer and Scorer, for `map_batches`.
Plain Python with no Ray import, so these are the code paths the local scorer's tests cover.
Stage 1 (CPU tasks) reads an input in chunks and tokenizes them; stage 2 (one actor per worker,
one GPU each on a GPU cluster) runs the model and writes each chunk as a Parquet part. One Ray
row is one chunk, so a part is always one whole chunk, scored in the same batches by every run
(a resumed run's scores are bit for bit an uninterrupted run's). Its columns: `_input` (the
input's stem), `_row` (the chunk's first row, 0-based), `_last` (the input's final chunk),
`_blank` (empty texts), and as lists `_id` and `_tokens` (token ids, ragged).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from score.input import iter_chunks, open_input
from score.model_folder import read_model_folder, read_thresholds
from score.output import chunk_table, output_schema, write_part
from score.predict import Scorer, TextTokenizer, Tokens

CPU_THREADS_PER_WORKER = 4  # onnxruntime threads of one worker, fewer on a node with fewer CPUs
PART_FACTS = ("_input", "_row", "_last", "_blank")


@functools.lru_cache(maxsize=4)
def _tokenizer(tokenizer_file: str, max_len: int) -> TextTokenizer:
    return TextTokenizer(Path(tokenizer_file), max_len)  # once per worker process


def read_inputs(
    batch: pa.Table,
    *,
    options: dict,
    chunk_rows: int,
    tokenizer_file: str,
    max_len: int,
    done: dict[str, list[int]],
) -> Iterator[pa.Table]:
    """For each input path in `batch`, its tokenized chunks in order, streamed one at a time,
    leaving out the chunks (first rows) that `done` lists for its stem: parts an earlier run
    wrote. Those are still read, to find where the next chunk starts, but not tokenized."""
    tokenizer = _tokenizer(tokenizer_file, max_len)
    for path in batch.column("path").to_pylist():
        stem, skip = Path(path).stem, set(done.get(Path(path).stem, ()))
        chunks = iter_chunks(open_input(Path(path), **options), chunk_rows)
        chunk = next(chunks)  # an input with no rows raises the local scorer's message here
        for following in chunks:  # one chunk of look-ahead tells which one is the last
            if chunk.start not in skip:
                yield _chunk_row(stem, chunk, tokenizer, last=False)
            chunk = following
        if chunk.start not in skip:
            yield _chunk_row(stem, chunk, tokenizer, last=True)


def _chunk_row(stem: str, chunk, tokenizer: TextTokenizer, *, last: bool) -> pa.Table:
    def one(values: pa.Array) -> pa.LargeListArray:  # the whole array as one list value
        return pa.LargeListArray.from_arrays(pa.array([0, len(values)], pa.int64()), values)

    return pa.table(
        {
            "_input": [stem],
            "_row": pa.array([chunk.start], pa.int64()),
            "_last": [last],
            "_blank": pa.array([int(chunk.blank.sum())], pa.int64()),
            "_id": one(chunk.ids),
            "_tokens": one(tokens_to_arrow(tokenizer.tokenize(chunk.texts))),
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
    """One per worker: loads the model once, scores one chunk per call and writes it as a part
    into `folder` (its name says which chunk: a retried call rewrites the same part). The driver
    passes the provider and variant it chose for the whole run; `Scorer` honours them or raises
    the single-machine UserError (no silent fallback to another precision)."""

    def __init__(self, *, folder: str, model_dir: str, id_name: str, thresholds: bool, **scorer):
        self.folder = Path(folder)
        model = read_model_folder(Path(model_dir))
        self.cut = read_thresholds(model) if thresholds else None
        self.id_name = id_name
        threads = scorer.pop("threads") or min(CPU_THREADS_PER_WORKER, os.cpu_count() or 1)
        self.scorer = Scorer(Path(model_dir), threads=threads, **scorer)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Score the chunk (`batch_size=1`: one row); return the part's summary row."""
        stem, first, last, blank = (batch.column(c)[0].as_py() for c in PART_FACTS)
        ids = batch.column("_id").combine_chunks().flatten()
        tokens = tokens_from_arrow(batch.column("_tokens").combine_chunks().flatten())
        probs = self.scorer.predict_tokens(tokens, first_row=first)
        schema = output_schema(self.id_name, ids.type, self.scorer.labels, self.cut is not None)
        table = chunk_table(schema, ids, probs, self.cut)
        path = write_part(self.folder, stem, first, table, last=last, blank=blank)
        part = {"input": stem, "first_row": first, "rows": len(ids), "blank": blank}
        return pa.Table.from_pylist([part | {"last": last, "path": path}])
