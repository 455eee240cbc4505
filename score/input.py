"""Step 1, input: stream a CSV or Parquet file as chunks of (ids, texts) in input order, in
bounded memory; and the files of a multi-file run (named one by one, or the files of folders).

CSV: blocks of whole records, every column as text (input_csv.py, which also locates its errors).
Parquet: pyarrow's batches, one row group at a time, only the id and text columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from common.errors import UserError
from score.input_csv import describe_csv_failure, first_line, iter_blocks, read_header

SUFFIXES = {".csv", ".parquet"}  # the files a folder given to a multi-file run contributes
CSV_ERRORS = (pl.exceptions.ComputeError, pl.exceptions.NoDataError)  # Polars refused the CSV


@dataclass
class Chunk:
    start: int  # 0-based number of the chunk's first row in the input
    ids: pa.Array  # the id column as read, or 0-based row numbers (int64)
    texts: list[str]  # null texts become ""
    blank: np.ndarray  # bool per row: the text is null, empty or only whitespace (still scored)


@dataclass
class InputFile:
    path: Path
    text_column: str
    id_column: str | None  # None: number the rows
    id_type: pa.DataType  # as read: text for CSV, the file's own type for Parquet
    encoding: str = "utf8"
    rows: int | None = None  # known up front for Parquet only
    header: bytes = field(default=b"", repr=False)  # CSV only

    @property
    def is_csv(self) -> bool:
        return self.path.suffix.lower() != ".parquet"


def open_input(
    path: Path, *, text_column: str, id_column: str | None, encoding: str = "utf8"
) -> InputFile:
    """Check the file and its columns (reads the header or the Parquet footer only)."""
    if not path.is_file():
        raise UserError(f"input file {path} does not exist; pass the path of a CSV or Parquet file")
    source = InputFile(path, text_column, id_column, pa.int64(), encoding)
    if source.is_csv:
        if path.stat().st_size == 0:
            raise UserError(f"{path} is empty (0 bytes); pass a CSV with a header and rows")
        try:
            source.header, names = read_header(path, encoding)
        except CSV_ERRORS as e:
            raise UserError(describe_csv_failure(path, encoding, e)) from None
        types = dict.fromkeys(names, pa.string())
    else:
        source.rows, types = _parquet_footer(path)
    for column, flag in ((text_column, "--text-column"), (id_column, "--id-column")):
        if column is not None and column not in types:
            also = " or --no-id-column to number the rows" if flag == "--id-column" else ""
            raise UserError(
                f'{path} has no column "{column}" (found: {", ".join(types)}); pass {flag}{also}'
            )
    if not _is_text(types[text_column]):
        raise UserError(
            f'{path}: column "{text_column}" holds {types[text_column]}, not text; '
            "pass --text-column with the text column"
        )
    if id_column is not None:
        source.id_type = types[id_column]
    return source


def iter_chunks(source: InputFile, chunk_rows: int) -> Iterator[Chunk]:
    """Chunks of `chunk_rows` rows (the last one shorter), in order; located errors."""
    start = 0
    for frame in _rechunk(_frames(source, chunk_rows), chunk_rows):
        text = frame[source.text_column].cast(pl.String)
        if source.id_column is None:
            ids = pa.array(range(start, start + frame.height), type=pa.int64())
        else:
            ids = frame[source.id_column].to_arrow().cast(source.id_type)
        blank = (text.is_null() | (text.str.strip_chars() == "")).to_numpy()
        yield Chunk(start, ids, text.fill_null("").to_list(), blank)
        start += frame.height
    if start == 0:
        raise UserError(f"{source.path} has a header but no rows; nothing to score")


def _frames(source: InputFile, chunk_rows: int) -> Iterator[pl.DataFrame]:
    """The id and text columns, as many rows at a time as the reader gives."""
    columns = [c for c in (source.id_column, source.text_column) if c is not None]
    if not source.is_csv:
        try:
            for batch in pq.ParquetFile(source.path).iter_batches(chunk_rows, columns=columns):
                yield pl.from_arrow(batch)
        except (pa.ArrowException, OSError) as e:
            raise UserError(
                f"{source.path} could not be read as Parquet ({first_line(e)})"
            ) from None
        return
    try:
        for block in iter_blocks(source.path, source.header, source.encoding):
            yield block.select(columns)
    except CSV_ERRORS as e:
        raise UserError(describe_csv_failure(source.path, source.encoding, e)) from None


def _rechunk(frames: Iterator[pl.DataFrame], rows: int) -> Iterator[pl.DataFrame]:
    pending, count = [], 0
    for frame in frames:
        pending.append(frame)
        count += frame.height
        while count >= rows:
            joined = pl.concat(pending)
            yield joined.slice(0, rows)
            pending, count = [joined.slice(rows)], count - rows
    if count:
        yield pl.concat(pending)


def _parquet_footer(path: Path) -> tuple[int, dict[str, pa.DataType]]:
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError) as e:
        raise UserError(
            f"{path} is not a Parquet file ({first_line(e)}); pass a .parquet file, "
            "or rename a CSV to .csv"
        ) from None
    if meta.num_rows == 0:
        raise UserError(f"{path} has no rows; nothing to score")
    schema = meta.schema.to_arrow_schema()
    return meta.num_rows, {f.name: f.type for f in schema}


def _is_text(kind: pa.DataType) -> bool:
    kind = kind.value_type if pa.types.is_dictionary(kind) else kind
    strings = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    return pa.types.is_null(kind) or any(is_kind(kind) for is_kind in strings)


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files in the order given; a folder gives its *.csv and *.parquet files, sorted by name.
    Each input becomes an output folder named after its stem, so two stems may not clash."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
            if not found:
                raise UserError(f"folder {path} holds no .csv or .parquet file; pass files")
            files.extend(found)
        else:
            files.append(path)  # a missing file gets open_input's message
    seen: dict[str, Path] = {}
    for file in files:
        if file.stem in seen and seen[file.stem].resolve() != file.resolve():
            raise UserError(
                f"{seen[file.stem]} and {file} would both be written to the output folder "
                f"{file.stem}/; rename one of them"
            )
        if file.stem in seen:
            raise UserError(f"{file} is given twice; pass each input once")
        seen[file.stem] = file
    return files
