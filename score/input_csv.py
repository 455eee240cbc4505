"""Input (CSV): read a CSV in blocks of whole records, each parsed by Polars: memory stays flat at
any size; and, once Polars has refused a file, say where it goes wrong (the first bad UTF-8 byte
or malformed record), which Polars' own messages do not.

A block ends at the last newline outside quotes (an even number of quotes before it, as RFC 4180
doubles quotes inside fields), and Polars parses it with the header line in front, so every block
is read exactly as the whole file would be. Not `pl.scan_csv(...).collect_batches()`: it reads
300-400 MB ahead of the model and, with a projection, drops a ragged row's extra fields. Not
pyarrow's `open_csv`: 1.4x faster, but its peak RSS grows with the file (305 MiB at 2,000,000
rows against 152 MiB here), and the model, not the reader, limits scoring.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from common.errors import UserError

BLOCK_BYTES = 4 * 2**20
MAX_RECORD_BYTES = 64 * 2**20  # one record this long is an unclosed quote, not a comment
# RFC 4180: a field is either quoted (quotes inside written twice) or holds no quote at all.
QUOTED = r'"[^"]*(?:""[^"]*)*"'
RECORD = re.compile(rf'(?:{QUOTED}|[^",\r\n]*)(?:,(?:{QUOTED}|[^",\r\n]*))*(?:\r\n|\n|\r)?')
# The first line of a record that goes on: whole fields, then a quoted field left open.
OPEN_RECORD = re.compile(rf'(?:(?:{QUOTED}|[^",\r\n]*),)*"[^"]*(?:""[^"]*)*')
QUOTED_FIELD = re.compile(QUOTED)
MAX_RECORD_CHARS = 16 * 2**20  # a record this long is an unclosed quote, not a comment
QUOTING_FIX = 'close the quote, or write a quote inside a quoted field twice ("")'


def read_header(path: Path, encoding: str) -> tuple[bytes, list[str]]:
    """The header record's bytes as they are in the file, and its column names."""
    with open(path, "rb") as f:
        data = f.read(BLOCK_BYTES)
        while (end := record_end(data)) is None and len(data) < MAX_RECORD_BYTES:
            more = f.read(BLOCK_BYTES)
            if not more:
                break
            data += more
    header = data if end is None else data[:end]
    if not header.strip():
        raise UserError(f"{path} has no header and no rows; pass a CSV with a header")
    return header, pl.read_csv(header, infer_schema=False, encoding=encoding).columns


def iter_blocks(path: Path, header: bytes, encoding: str) -> Iterator[pl.DataFrame]:
    """Every column as text, a block of whole records at a time, in file order."""
    line = header if header.endswith(b"\n") else header + b"\n"
    with open(path, "rb") as f:
        f.seek(len(header))
        carry = b""
        while block := f.read(BLOCK_BYTES):
            data = carry + block
            end = record_end(data, last=True, after=len(carry))  # carry holds no end
            if end is None and len(data) > MAX_RECORD_BYTES:
                raise pl.exceptions.ComputeError("a record runs past 64 MB: unclosed quote?")
            carry = data if end is None else data[end:]
            if end is not None:
                yield _parse(line, data[:end], encoding)
        if carry.strip():  # the last record, without a line end
            yield _parse(line, carry, encoding)


def record_end(data: bytes, *, last: bool = False, after: int = 0) -> int | None:
    """Index just past the first (or last) newline outside quotes (an even number of quotes
    before it), searching from `after`."""
    if not last:
        before, start = data.count(b'"', 0, after), after
        while (nl := data.find(b"\n", start)) >= 0:
            before += data.count(b'"', start, nl)
            if before % 2 == 0:
                return nl + 1
            start = nl + 1
        return None
    before, end = data.count(b'"'), len(data)
    while (nl := data.rfind(b"\n", after, end)) >= 0:
        before -= data.count(b'"', nl, end)
        if before % 2 == 0:
            return nl + 1
        end = nl
    return None


def _parse(header: bytes, records: bytes, encoding: str) -> pl.DataFrame:
    return pl.read_csv(header + records, infer_schema=False, encoding=encoding)


def describe_csv_failure(path: Path, encoding: str, error: Exception) -> str:
    """One line for UserError: what is wrong, where, and what to do."""
    if encoding == "utf8" and (bad := find_invalid_utf8(path)) is not None:
        return (
            f"{path} is not valid UTF-8 (first bad byte at offset {bad[0]}, line {bad[1]}); "
            "convert it (for example iconv -f cp1252 -t utf-8) or pass --encoding "
            "utf8-lossy to read bad bytes as U+FFFD"
        )
    if (problem := find_malformed_record(path)) is not None:
        return f"{path} is malformed CSV at line {problem[0]}: {problem[1]}"
    return (
        f"{path} could not be parsed as CSV ({first_line(error)}); check its quoting and that no "
        "row has more fields than the header"
    )


def first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def find_invalid_utf8(path: Path) -> tuple[int, int] | None:
    """(byte offset, 1-based line) of the first byte that is not UTF-8, or None."""
    offset, line, carry = 0, 1, b""
    with open(path, "rb") as f:
        while True:
            block = f.read(BLOCK_BYTES)
            data = carry + block
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as e:
                if block and e.reason == "unexpected end of data":  # a character cut by the block
                    carry, data = data[e.start :], data[: e.start]
                else:
                    return offset + e.start, line + data.count(b"\n", 0, e.start)
            else:
                carry = b""
            offset += len(data)
            line += data.count(b"\n")
            if not block:
                return None


def find_malformed_record(path: Path) -> tuple[int, str] | None:
    """(1-based line, what is wrong) for the first record that breaks the quoting rules."""
    fields, pending, quotes, chars, start = None, [], 0, 0, 1
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for number, text in enumerate(f, start=1):
            pending.append(text)
            quotes += text.count('"')
            chars += len(text)
            if quotes % 2:  # inside a quoted field: the record goes on
                if len(pending) == 1 and not OPEN_RECORD.fullmatch(text):
                    return start, f"a quote in the middle of a field; {QUOTING_FIX}"
                if chars > MAX_RECORD_CHARS:
                    return start, f"a quoted field opened on this line never closes; {QUOTING_FIX}"
                continue
            record = "".join(pending)
            if not RECORD.fullmatch(record):
                return start, f"a quote in the middle of a field; {QUOTING_FIX}"
            count = QUOTED_FIELD.sub("", record).count(",") + 1
            fields = count if fields is None else fields  # the header's
            if count > fields:
                return start, (
                    f"{count} fields where the header has {fields}; quote fields that contain "
                    "commas"
                )
            pending, quotes, chars, start = [], 0, 0, number + 1
    if pending:
        return start, f"a quoted field opened on this line never closes; {QUOTING_FIX}"
    return None
