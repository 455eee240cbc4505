"""Input (errors): say where a CSV that Polars refused goes wrong (the first bad UTF-8 byte or
malformed record), which Polars' own messages do not. Runs only after Polars has failed."""

from __future__ import annotations

import re
from pathlib import Path

# RFC 4180: a field is either quoted (quotes inside written twice) or holds no quote at all.
QUOTED = r'"[^"]*(?:""[^"]*)*"'
RECORD = re.compile(rf'(?:{QUOTED}|[^",\r\n]*)(?:,(?:{QUOTED}|[^",\r\n]*))*(?:\r\n|\n|\r)?')
# The first line of a record that goes on: whole fields, then a quoted field left open.
OPEN_RECORD = re.compile(rf'(?:(?:{QUOTED}|[^",\r\n]*),)*"[^"]*(?:""[^"]*)*')
QUOTED_FIELD = re.compile(QUOTED)
MAX_RECORD_CHARS = 16 * 2**20  # a record this long is an unclosed quote, not a comment
BLOCK = 2**20
QUOTING_FIX = 'close the quote, or write a quote inside a quoted field twice ("")'


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
            block = f.read(BLOCK)
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
