"""The Ray engine's output folder: parts must tile every input, strays of failed attempts go."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.errors import UserError
from common.writes import staged_folder
from score.output import MANIFEST, check_parts, finish, finished_parts, write_part


def _part(first: int, rows: int, last: bool = False, name: str = "a") -> dict:
    path = f"{name}/part-{first:012d}.parquet"
    return {"input": name, "first_row": first, "rows": rows, "blank": 1, "last": last, "path": path}


def test_parts_in_any_order_that_tile_the_input_pass():
    summary = check_parts([_part(10, 5, last=True), _part(0, 10), _part(0, 3, True, name="b")])
    assert summary["a"] == {
        "rows": 15,
        "empty_texts": 2,
        "parts": ["a/part-000000000000.parquet", "a/part-000000000010.parquet"],
    }
    assert summary["b"]["rows"] == 3


@pytest.mark.parametrize(
    "parts",
    [
        [_part(0, 10), _part(12, 3, last=True)],  # rows 10-11 lost
        [_part(0, 10), _part(5, 10, last=True)],  # rows 5-9 twice
        [_part(0, 10), _part(10, 5)],  # the tail never arrived
        [_part(0, 10, last=True), _part(10, 5, last=True)],  # two ends
    ],
)
def test_a_gap_an_overlap_or_a_missing_tail_is_refused(parts: list[dict]):
    with pytest.raises(RuntimeError, match=r"missing or doubled|do not end"):
        check_parts(parts)


def _finish_into(out: Path, parts: list[dict], manifest: dict, extra=None) -> None:
    """Stage a folder as the Ray engine does: parts written, then finish() and the swap."""
    with staged_folder(out) as staging:
        for part in parts:
            write_part(staging, part["input"], part["first_row"], TABLE, last=False, blank=0)
        if extra:
            extra(staging)
        finish(staging, parts, manifest)


TABLE = pa.table({"id": ["x"], "toxic": pa.array([0.5], pa.float32())})


def test_finish_keeps_listed_parts_only_and_replaces_an_earlier_output(tmp_path: Path):
    out = tmp_path / "scored"
    out.mkdir()
    (out / MANIFEST).write_text("{}")  # an earlier run's folder: replaced
    kept = _part(0, 1, last=True)

    def failed_attempts(staging: Path) -> None:
        # a part of a failed attempt that nobody listed
        write_part(staging, "a", 7, TABLE, last=False, blank=0)
        (staging / "a" / ".part-000000000009.parquet.tmp-123").write_bytes(b"half")  # killed

    manifest = {"inputs": {"a.csv": {"rows": 1, "empty_texts": 0, "parts": [kept["path"]]}}}
    _finish_into(out, [kept], manifest, failed_attempts)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        MANIFEST,
        kept["path"],
    ]
    assert json.loads((out / MANIFEST).read_text())["inputs"]["a.csv"]["rows"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["scored"]  # no staging, no old folder


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda path: path.unlink(), "is not on this machine"),
        (lambda path: path.write_bytes(b"not parquet"), "is not Parquet"),
        (lambda path: pq.write_table(pa.concat_tables([TABLE, TABLE]), path), "holds 2 rows"),
    ],
    ids=["missing", "not-parquet", "row-count"],
)
def test_a_part_missing_or_wrong_on_the_driver_fails_and_keeps_the_old_output(
    tmp_path: Path, damage, fragment: str
):
    """On a cluster without shared storage a worker's part lands on its own disk: the run
    must say so in one line, and put nothing in place."""
    out = tmp_path / "scored"
    out.mkdir()
    (out / MANIFEST).write_text("{}")
    part = _part(0, 1, last=True)
    manifest = {"inputs": {"a.csv": {"rows": 1, "empty_texts": 0, "parts": [part["path"]]}}}
    with pytest.raises(UserError) as error:
        _finish_into(out, [part], manifest, lambda staging: damage(staging / part["path"]))
    message = str(error.value)
    assert fragment in message and "storage that every Ray node sees" in message
    assert "\n" not in message
    assert (out / MANIFEST).read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["scored"]


def test_finished_parts_reads_back_what_the_workers_wrote(tmp_path: Path):
    """An input is finished when its final chunk and every chunk before it have a part."""
    table = pa.table({"id": ["x", "y"], "toxic": pa.array([0.5, 0.1], pa.float32())})
    written = [("a", 0, False), ("a", 2, True), ("b", 0, False), ("b", 4, True), ("c", 0, False)]
    for stem, first, last in written:
        write_part(tmp_path, stem, first, table, last=last, blank=first + 1)
    (tmp_path / "c" / ".part-000000000002.parquet.tmp-123").write_bytes(b"half")  # killed
    parts, finished = finished_parts(tmp_path, chunk_rows=2)
    assert finished == {"a"}  # b lacks rows 2-3, c its last chunk
    assert [(p["input"], p["first_row"], p["last"]) for p in parts] == written
    assert [p["blank"] for p in parts] == [1, 3, 1, 5, 1]
    assert {p["rows"] for p in parts} == {2}
    assert parts[1]["path"] == "a/part-000000000002.parquet"
