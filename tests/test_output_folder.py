"""The Ray engine's output folder: parts must tile every input, strays of failed attempts go."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from score.output_folder import MANIFEST, check_parts, commit, staging_folder, write_part


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


def test_commit_keeps_listed_parts_only_and_replaces_an_earlier_output(tmp_path: Path):
    out = tmp_path / "scored"
    out.mkdir()
    (out / MANIFEST).write_text("{}")  # an earlier run's folder: replaced
    staging = staging_folder(out)
    table = pa.table({"id": ["x"], "toxic": pa.array([0.5], pa.float32())})
    kept = write_part(staging, "a", 0, table)
    write_part(staging, "a", 7, table)  # a part of a failed attempt that nobody listed
    (staging / "a" / ".part-000000000009.parquet.tmp-123").write_bytes(b"half")  # killed worker
    commit(staging, out, {"inputs": {"a.csv": {"rows": 1, "empty_texts": 0, "parts": [kept]}}})
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        MANIFEST,
        kept,
    ]
    assert json.loads((out / MANIFEST).read_text())["inputs"]["a.csv"]["rows"] == 1
    assert not staging.exists() and [p.name for p in tmp_path.iterdir()] == ["scored"]
