"""`python -m benchmarks` on broken folders and lax labels: one line, exit 2, nothing written.

Apart from tests/test_benchmarks.py so these checks run without its module-wide benchmark run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import labelled_rows, write_labelled_csv

from benchmarks.__main__ import main


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("benchmarks: error: "), err
    return lines[0]


@pytest.mark.parametrize("broken", ["model/config.json", "onnx/export.json", "onnx/config.json"])
def test_corrupt_json_in_a_folder_is_one_line(
    tmp_path: Path, tiny_model_dir: Path, onnx_dir: Path, capsys, broken: str
):
    model, onnx = tmp_path / "model", tmp_path / "onnx"
    shutil.copytree(tiny_model_dir, model)
    shutil.copytree(onnx_dir, onnx)
    if broken == "onnx/config.json":  # read only when export.json does not list the labels
        record = (onnx / "export.json").read_text()
        (onnx / "export.json").write_text(record.replace('"labels"', '"old_labels"'))
    (tmp_path / broken).write_text('{"id2label": ')
    out = tmp_path / "results"
    data = write_labelled_csv(tmp_path / "eval.csv")
    argv = ["quality", "--model", str(model), "--onnx", str(onnx), "--eval-data", str(data)]
    assert main([*argv, "--device", "cpu", "--out", str(out)]) == 2
    line = _one_line(capsys)
    assert f"{tmp_path / broken} is not valid JSON (" in line and "pass " in line
    assert not out.exists()


@pytest.mark.parametrize(("value", "shown"), [("1.0", "value '1.0'"), (None, "an empty value")])
def test_quality_labels_follow_the_training_rules(
    tmp_path: Path, tiny_model_dir: Path, onnx_dir: Path, capsys, value, shown
):
    """These rows were once dropped without a word, which changes the ROC-AUC unseen."""
    rows = labelled_rows()
    rows[6][2] = value  # data row 7, column toxic
    data = write_labelled_csv(tmp_path / "eval.csv", rows)
    out = tmp_path / "results"
    argv = ["quality", "--model", str(tiny_model_dir), "--onnx", str(onnx_dir), "--device", "cpu"]
    assert main([*argv, "--eval-data", str(data), "--out", str(out)]) == 2
    assert _one_line(capsys) == (
        f"benchmarks: error: {data} column 'toxic' has {shown} at data row 7; labels must be 0 or 1"
    )
    assert not out.exists()


def test_quality_without_labelled_data_is_one_line(tmp_path, tiny_model_dir, onnx_dir, capsys):
    out = tmp_path / "results"
    argv = ["quality", "--model", str(tiny_model_dir), "--onnx", str(onnx_dir), "--device", "cpu"]
    assert main([*argv, "--out", str(out)]) == 2
    assert _one_line(capsys) == (
        "benchmarks: error: quality needs a labelled CSV; pass --eval-data"
    )
    assert not out.exists()
