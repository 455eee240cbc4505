"""`python -m benchmarks memory` on the tiny model: real `python -m score` children on generated
CSVs of the row counts asked, their peak RSS, rows/s and variant, in results.json and report.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import main
from benchmarks.memory import write_comments
from common.cpu import this_cpu


def test_memory_records_each_count_in_results_and_report(tmp_path: Path, onnx_dir: Path, capsys):
    out = tmp_path / "results"
    argv = ["memory", "--onnx", str(onnx_dir), "--row-counts", "200,400", "--out", str(out)]
    assert main(argv) == 0
    folder = out / this_cpu().slug() / "memory"
    assert sorted(p.name for p in folder.iterdir()) == ["report.md", "results.json"]
    record = json.loads((folder / "results.json").read_text())
    runs = record["runs"]
    assert [r["rows"] for r in runs] == [200, 400]
    exported = json.loads((onnx_dir / "export.json").read_text())["variants"]
    for r in runs:
        # Python with onnxruntime and polars loaded holds tens of MiB: a unit slip (KiB read
        # as bytes) would give well under 1 MiB.
        assert 30 < r["peak_rss_mib"] < record["goal_mib"] and r["goal_met"]
        assert r["seconds"] > 0 and r["rows_per_s"] > 0 and r["process_seconds"] >= r["seconds"]
        assert r["variant"] in exported
    assert record["env"]["cpu"] == this_cpu().model and record["settings"]["row_counts"] == [
        200,
        400,
    ]
    report = (folder / "report.md").read_text()
    assert "| 200 | " in report and "| 400 | " in report and report.count("| met |") == 2
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and "goal < 1 GiB met" in printed[0]


def test_the_csv_has_the_rows_asked_written_in_chunks(tmp_path: Path, monkeypatch):
    import polars as pl

    import benchmarks.memory as memory

    monkeypatch.setattr(memory, "CHUNK", 100)  # three chunks, the last one short
    path = tmp_path / "comments.csv"
    write_comments(path, 250, seed=1)
    frame = pl.read_csv(path)
    assert frame.columns == ["id", "comment_text"] and frame.height == 250
    assert frame["id"].to_list() == [f"r{i}" for i in range(250)]
    assert (
        frame["comment_text"].null_count() == 0 and frame["comment_text"].n_unique() > 100
    )  # drawn from 250


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["memory", "--row-counts", "100,0"], "must be a positive whole number, got 0"),
        (["throughput", "--row-counts", "100"], "--row-counts and --variant are options of"),
        (["memory", "--variant", "int4"], "invalid choice: 'int4'"),
    ],
)
def test_bad_options_are_usage_errors(argv: list[str], message: str, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_a_folder_without_export_json_or_too_little_disk_is_one_line(
    tmp_path: Path, onnx_dir: Path, capsys
):
    out = tmp_path / "results"
    assert main(["memory", "--onnx", str(tmp_path), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"benchmarks: error: {tmp_path} has no export.json; pass --onnx with the output of "
        "python -m export"
    )
    rows = 10**15  # petabytes: refused before a byte of CSV is written
    argv = ["memory", "--onnx", str(onnx_dir), "--row-counts", str(rows), "--out", str(out)]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"benchmarks: error: {rows:,} rows need about 500000000.0 GB free in ")
    assert error.endswith("or set TMPDIR to a folder on a bigger disk")
    assert not out.exists()
