"""`python -m train.thresholds`: re-picked thresholds from scored rows, read back by the scorer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import labelled_rows, write_labelled_csv
from sklearn.metrics import f1_score

from score.__main__ import main as score
from train.thresholds import main as thresholds


@pytest.fixture
def scored(tmp_path: Path, onnx_dir: Path) -> tuple[Path, Path]:
    """The fixture's labelled CSV and what `python -m score` wrote for it."""
    labelled = write_labelled_csv(tmp_path / "labelled.csv")
    out = tmp_path / "scored.parquet"
    assert score([str(labelled), str(out), "--model", str(onnx_dir), "--quiet"]) == 0
    return labelled, out


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("train.thresholds: error: ") and "\n" not in err and "Traceback" not in err
    )
    return err


def test_each_threshold_is_the_best_f1_cut_and_the_scorer_uses_it(
    scored, onnx_dir: Path, tmp_path: Path
):
    labelled, scores = scored
    model = tmp_path / "onnx"
    shutil.copytree(onnx_dir, model)
    assert thresholds([str(labelled), str(scores), "--out", str(model / "thresholds.json")]) == 0
    picked = json.loads((model / "thresholds.json").read_text())

    truth, probs = pl.read_csv(labelled), pl.read_parquet(scores)
    # Row by row, not sorted by id: the fixture has a duplicate id, with other labels.
    assert probs["id"].to_list() == truth["id"].to_list()
    for name in ["toxic", "obscene", "insult"]:  # the labels with positives in the fixture
        y, p = truth[name].to_numpy(), probs[name].to_numpy()
        best = max(f1_score(y, p >= cut) for cut in np.unique(p))  # every possible cut
        assert f1_score(y, p >= picked[name]["threshold"]) == pytest.approx(best)
        assert picked[name]["f1"] == pytest.approx(best, abs=1e-6)
        assert picked[name]["positives"] == int(y.sum())
    assert picked["threat"] == {"threshold": 0.5, "f1": None, "positives": 0}

    flagged = tmp_path / "flagged.parquet"
    argv = [str(labelled), str(flagged), "--model", str(model), "--thresholds", "--quiet"]
    assert score(argv) == 0
    out = pl.read_parquet(flagged)
    expected = (out["toxic"] >= np.float32(picked["toxic"]["threshold"])).to_list()
    assert out["toxic_flag"].to_list() == expected


def test_scores_of_another_csv_are_refused(scored, tmp_path: Path, capsys):
    _, scores = scored
    rows = labelled_rows()
    extra = [*rows, ["new0001", "A comment nobody scored.", 1, 0, 0, 0, 0, 0]]
    out = tmp_path / "t.json"
    longer = write_labelled_csv(tmp_path / "more.csv", extra)
    assert thresholds([str(longer), str(scores), "--out", str(out)]) == 2
    assert f"has {len(rows)} rows and {longer} {len(extra)}" in _one_line_error(capsys)
    swapped = write_labelled_csv(tmp_path / "swapped.csv", [rows[1], rows[0], *rows[2:]])
    assert thresholds([str(swapped), str(scores), "--out", str(out)]) == 2
    assert f"data row 1 has id {rows[1][0]!r}" in _one_line_error(capsys)
    assert not out.exists()


def test_unscored_rows_can_be_left_out(scored, tmp_path: Path, capsys):
    _, scores = scored
    rows = labelled_rows()
    rows[3] = [rows[3][0], rows[3][1], -1, -1, -1, -1, -1, -1]  # Jigsaw's "not scored"
    labelled = write_labelled_csv(tmp_path / "with-unscored.csv", rows)
    out = tmp_path / "t.json"
    assert thresholds([str(labelled), str(scores), "--out", str(out)]) == 2
    assert "pass --drop-unlabeled" in _one_line_error(capsys)
    assert thresholds([str(labelled), str(scores), "--out", str(out), "--drop-unlabeled"]) == 0
    assert f"{len(rows) - 1} labelled rows (1 labelled -1 left out)" in capsys.readouterr().out


def test_existing_out_needs_force(scored, tmp_path: Path, capsys):
    labelled, scores = scored
    out = tmp_path / "t.json"
    out.write_text("{}")
    assert thresholds([str(labelled), str(scores), "--out", str(out)]) == 2
    assert "pass --force" in _one_line_error(capsys)
    assert out.read_text() == "{}"
    assert thresholds([str(labelled), str(scores), "--out", str(out), "--force"]) == 0
    assert "toxic" in json.loads(out.read_text())


def test_scores_without_the_id_column_are_refused(scored, onnx_dir, tmp_path: Path, capsys):
    labelled, _ = scored
    rows_only = tmp_path / "rows.parquet"
    argv = [str(labelled), str(rows_only), "--model", str(onnx_dir), "--no-id-column", "--quiet"]
    assert score(argv) == 0
    assert thresholds([str(labelled), str(rows_only), "--out", str(tmp_path / "t.json")]) == 2
    assert "no column 'id'" in _one_line_error(capsys)


def test_a_label_named_twice_is_a_usage_error(tmp_path: Path, capsys):
    """Once a polars DuplicateError traceback; now argparse's one line and exit 2."""
    argv = ["a.csv", "b.parquet", "--out", str(tmp_path / "t.json"), "--labels", "toxic", "toxic"]
    with pytest.raises(SystemExit) as exit_info:
        thresholds(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--labels names a label more than once; name each label once" in err
    assert "Traceback" not in err and not (tmp_path / "t.json").exists()
