"""End-to-end tests of `python -m train` on the tiny random BERT, in-process through `main()`."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    LABELLED_HEADER,
    QUICK_TRAIN_FLAGS,
    labelled_rows,
    write_labelled_csv,
)

from common.labelled import JIGSAW_LABELS
from train.__main__ import main

LABELS = list(JIGSAW_LABELS)
STATS_COLUMNS = [
    "epoch",
    "train_loss",
    "valid_loss",
    "roc_auc_macro",
    "roc_auc_micro",
    "train_time_s",
    "valid_time_s",
    "train_samples_per_s",
]
TIMING = {"train_time_s", "valid_time_s", "train_samples_per_s"}
ONE_STEP = ["--epochs", "1", "--max-steps", "1"]


def _read_json(path: Path):
    return json.loads(path.read_text())


def _train(data: Path, out: Path, model: Path, *extra: str) -> int:
    return main(
        ["--data", str(data), "--model", str(model), *QUICK_TRAIN_FLAGS, "--out", str(out), *extra]
    )


# --- one shared run (the session fixture `trained_model_dir`, 3 epochs, --max-len 64) ---


def test_model_folder_has_config_weights_and_tokenizer(trained_model_dir: Path):
    config = _read_json(trained_model_dir / "config.json")
    assert config["id2label"] == {str(i): name for i, name in enumerate(LABELS)}
    assert config["label2id"] == {name: i for i, name in enumerate(LABELS)}
    assert config["problem_type"] == "multi_label_classification"
    assert (trained_model_dir / "model.safetensors").stat().st_size > 100_000
    assert (trained_model_dir / "tokenizer.json").is_file()
    tokenizer_config = _read_json(trained_model_dir / "tokenizer_config.json")
    assert tokenizer_config["model_max_length"] == 64  # --max-len, read downstream


def test_metrics_thresholds_and_args(trained_model_dir: Path):
    metrics = _read_json(trained_model_dir / "metrics.json")
    assert metrics["best_epoch"] == 3  # the seeded run, the same on every run
    best = metrics["validation"]
    assert best == metrics["epochs"][2]
    assert best["roc_auc_macro"] == max(e["roc_auc_macro"] for e in metrics["epochs"])
    assert 0.5 < best["roc_auc_macro"] <= 1
    assert set(best["roc_auc"]) == set(LABELS)
    assert math.isfinite(best["roc_auc"]["toxic"])

    thresholds = _read_json(trained_model_dir / "thresholds.json")
    assert list(thresholds) == LABELS
    assert all(0 <= t["threshold"] <= 1 for t in thresholds.values())
    # No positive row for severe_toxic in the fixture: the threshold stays at 0.5.
    assert thresholds["severe_toxic"] == {"threshold": 0.5, "f1": None, "positives": 0}
    # The positives among the 18 validation rows that seed 42 holds out.
    positives = {name: t["positives"] for name, t in thresholds.items()}
    assert positives == {name: 0 for name in LABELS} | {"toxic": 8, "obscene": 1, "insult": 8}

    args = _read_json(trained_model_dir / "training_args.json")
    assert (args["seed"], args["max_len"], args["epochs"], args["batch_size"]) == (42, 64, 3, 8)
    assert (args["device"], args["precision"], args["labels"]) == ("cpu", "fp32", LABELS)
    assert set(args["versions"]) == {"python", "torch", "transformers"}
    assert (args["train_rows"], args["val_rows"]) == (52, 18)  # 70 rows, --val-fraction 0.25


def test_stats_have_one_row_per_epoch(trained_model_dir: Path):
    with open(trained_model_dir / "stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    stats = _read_json(trained_model_dir / "stats.json")
    assert list(rows[0]) == STATS_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [e["epoch"] for e in stats] == [1, 2, 3]
    for row, epoch in zip(rows, stats, strict=True):
        for column in STATS_COLUMNS:
            assert math.isfinite(epoch[column])
            assert float(row[column]) == pytest.approx(epoch[column])


def test_loss_falls_on_separable_data(trained_model_dir: Path):
    stats = _read_json(trained_model_dir / "stats.json")
    assert stats[-1]["train_loss"] < stats[0]["train_loss"]
    assert stats[-1]["valid_loss"] < stats[0]["valid_loss"]


def test_data_summary_plots_and_report(trained_model_dir: Path):
    rows = labelled_rows()
    summary = _read_json(trained_model_dir / "data_summary.json")
    assert summary["rows"] == len(rows)
    assert summary["empty_texts"] == 2  # the "" comment and the null one
    assert summary["dropped_unlabeled"] == 0
    assert summary["positives"] == {
        name: sum(r[2 + j] for r in rows) for j, name in enumerate(LABELS)
    }
    assert summary["tokens"] == {
        "min": 2,  # an empty comment is [CLS] [SEP]
        "median": 14.0,
        "p95": 18.0,
        "max": 18,
        "max_len": 64,
        "truncated_share": 0.0,
    }

    for name in ("label_distribution.png", "token_lengths.png"):
        data = (trained_model_dir / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000

    report = (trained_model_dir / "report.md").read_text()
    assert report.startswith("# Training report")
    assert "## Evaluation on" in report and "| toxic |" in report


def test_eval_data_gets_its_own_section(trained_model_dir: Path):
    args = _read_json(trained_model_dir / "training_args.json")
    with open(args["eval_data"], newline="", encoding="utf-8") as f:
        eval_rows = list(csv.DictReader(f))
    evaluation = _read_json(trained_model_dir / "metrics.json")["eval"]
    assert evaluation["rows"] == len(eval_rows)
    assert list(evaluation["roc_auc"]) == LABELS
    assert math.isfinite(evaluation["roc_auc"]["toxic"])
    assert math.isfinite(evaluation["roc_auc_macro"]) and math.isfinite(evaluation["loss"])
    assert evaluation["roc_auc"]["threat"] is None  # one class only: no ROC-AUC


def test_saved_folder_reloads_with_transformers(trained_model_dir: Path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    texts = ["Stupid idiot, stop ruining the jazz page.", "Thanks for fixing the jazz article."]
    classify = pipeline("text-classification", model=str(trained_model_dir), top_k=None)
    results = classify(texts)
    assert [sorted(r["label"] for r in result) for result in results] == [sorted(LABELS)] * 2
    scores = [{r["label"]: r["score"] for r in result} for result in results]
    assert scores[0]["toxic"] > scores[1]["toxic"]  # learnt, on words seen in training

    tokenizer = AutoTokenizer.from_pretrained(trained_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(trained_model_dir).eval()
    assert model.config.num_labels == len(LABELS)
    with torch.inference_mode():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    probs = torch.sigmoid(logits)  # multi-label: one sigmoid per label, as the pipeline does
    for i, row in enumerate(scores):
        expected = [row[name] for name in LABELS]
        assert probs[i].tolist() == pytest.approx(expected, abs=1e-5)


def test_same_seed_gives_identical_results(trained_model_dir: Path, tmp_path: Path):
    args = _read_json(trained_model_dir / "training_args.json")  # enough to repeat the run
    out = tmp_path / "again"
    extra = ["--eval-data", args["eval_data"]]
    assert _train(Path(args["data"]), out, Path(args["model"]), *extra) == 0

    def without_timing(folder: Path) -> list[dict]:
        stats = _read_json(folder / "stats.json")
        return [{k: v for k, v in e.items() if k not in TIMING} for e in stats]

    assert without_timing(out) == without_timing(trained_model_dir)
    assert _read_json(out / "thresholds.json") == _read_json(trained_model_dir / "thresholds.json")
    first, second = (_read_json(d / "metrics.json")["eval"] for d in (trained_model_dir, out))
    assert first == second
    assert (out / "model.safetensors").read_bytes() == (
        trained_model_dir / "model.safetensors"
    ).read_bytes()


# --- runs of their own ---


def test_limit_uses_only_the_first_rows(tiny_model_dir: Path, labelled_csv: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert _train(labelled_csv, out, tiny_model_dir, *ONE_STEP, "--limit", "20") == 0
    summary = _read_json(out / "data_summary.json")
    first = labelled_rows()[:20]
    assert summary["rows"] == 20
    assert summary["positives"]["toxic"] == sum(r[2] for r in first)
    assert _read_json(out / "training_args.json")["limit"] == 20


def _head(folder: Path) -> dict:
    from safetensors.torch import load_file

    weights = load_file(folder / "model.safetensors")
    return {k: weights[k] for k in ("classifier.weight", "classifier.bias")}


def test_training_continues_from_a_folder_it_wrote(
    trained_model_dir: Path, labelled_csv: Path, tmp_path: Path, caplog
):
    out = tmp_path / "more"
    caplog.set_level("INFO", logger="train")
    # One step at a negligible rate: the head must come out as it went in, not re-initialised.
    assert _train(labelled_csv, out, trained_model_dir, *ONE_STEP, "--lr", "1e-12") == 0
    assert "already has a head for these labels: training continues from it" in caplog.text
    before, after = _head(trained_model_dir), _head(out)
    for name in before:
        assert after[name].allclose(before[name], atol=1e-6), name
    assert _read_json(out / "training_args.json")["head_lr"] == 1e-12


def test_other_labels_get_a_fresh_head(trained_model_dir: Path, labelled_csv: Path, tmp_path: Path):
    out = tmp_path / "reordered"
    reordered = LABELS[::-1]  # same count, so the shapes match: only the names tell them apart
    extra = [*ONE_STEP, "--lr", "1e-12", "--head-lr", "1e-12", "--labels", *reordered]
    assert _train(labelled_csv, out, trained_model_dir, *extra) == 0
    assert json.loads((out / "config.json").read_text())["id2label"]["0"] == reordered[0]
    before, after = _head(trained_model_dir), _head(out)
    assert not after["classifier.weight"].allclose(before["classifier.weight"], atol=1e-3)
    shares = [sum(r[2 + LABELS.index(n)] for r in labelled_rows()) for n in reordered]
    assert after["classifier.bias"].argmax().item() == shares.index(max(shares))  # the prior


def test_max_steps_stops_training_and_the_best_epoch_is_kept(
    tiny_model_dir: Path, labelled_csv: Path, tmp_path: Path
):
    rows = labelled_rows()
    held_out = np.random.default_rng(42).permutation(len(rows))[:18]  # seed 42's validation rows
    val_csv = write_labelled_csv(tmp_path / "val.csv", [rows[i] for i in sorted(held_out)])
    out = tmp_path / "out"
    assert (
        _train(labelled_csv, out, tiny_model_dir, "--max-steps", "9", "--eval-data", str(val_csv))
        == 0
    )
    metrics = _read_json(out / "metrics.json")
    # 52 training rows in batches of 8 make 7 steps an epoch: 9 steps end two into the second.
    assert [e["steps"] for e in metrics["epochs"]] == [7, 2]
    # The seeded run: the first epoch scores better than the second, so it is the one kept.
    aucs = [e["roc_auc_macro"] for e in metrics["epochs"]]
    assert aucs == [1.0, pytest.approx(0.99583, abs=1e-5)]
    assert metrics["best_epoch"] == 1 and metrics["validation"] == metrics["epochs"][0]
    # The saved weights are the first epoch's: scored again on its validation rows, they give
    # its figures, not the second epoch's (loss 0.6803 against 0.6814).
    assert metrics["eval"]["roc_auc_macro"] == 1.0
    assert metrics["eval"]["loss"] == pytest.approx(metrics["epochs"][0]["valid_loss"], abs=1e-6)
    assert metrics["epochs"][1]["valid_loss"] != pytest.approx(metrics["eval"]["loss"], abs=1e-4)


def test_drop_unlabeled_leaves_out_and_counts_rows(tiny_model_dir: Path, tmp_path: Path):
    rows = labelled_rows()
    rows[2][2:] = rows[6][2:] = ["-1"] * len(LABELS)
    rows[9][5] = "-1"  # one -1 is enough to count as unscored
    data = write_labelled_csv(tmp_path / "with-unscored.csv", rows)
    out = tmp_path / "out"
    assert _train(data, out, tiny_model_dir, *ONE_STEP, "--drop-unlabeled") == 0
    summary = _read_json(out / "data_summary.json")
    assert (summary["rows"], summary["dropped_unlabeled"]) == (len(rows) - 3, 3)


def test_force_replaces_a_full_out_folder(tiny_model_dir: Path, labelled_csv: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("from an earlier run")
    assert _train(labelled_csv, out, tiny_model_dir, *ONE_STEP, "--force") == 0
    assert not (out / "old.txt").exists()
    assert (out / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


# --- bad input: exit 2, one line on stderr, nothing written ---

BadInput = Callable[[Path, Path], tuple[list[str], str]]
BAD_INPUTS: dict[str, BadInput] = {}


def bad_input(fn: BadInput) -> BadInput:
    """Register a case: (tmp_path, out) -> (arguments, the message after 'train: error: ')."""
    BAD_INPUTS[fn.__name__] = fn
    return fn


def _with_label(tmp: Path, row: int, column: str, value: str | None) -> Path:
    rows = labelled_rows()
    rows[row - 1][LABELLED_HEADER.index(column)] = value
    return write_labelled_csv(tmp / "labels.csv", rows)


@bad_input
def missing_data(tmp, out):
    data = tmp / "nope.csv"
    return ["--data", str(data)], f"{data} does not exist; pass --data with a labelled CSV"


@bad_input
def missing_eval_data(tmp, out):
    data, eval_data = write_labelled_csv(tmp / "train.csv"), tmp / "nope.csv"
    return (
        ["--data", str(data), "--eval-data", str(eval_data)],
        f"{eval_data} does not exist; pass --eval-data with a labelled CSV",
    )


@bad_input
def empty_file(tmp, out):
    data = tmp / "empty.csv"
    data.write_bytes(b"")
    return ["--data", str(data)], f"{data} is empty; give a CSV with a header and labelled rows"


@bad_input
def header_only(tmp, out):
    data = write_labelled_csv(tmp / "header.csv", rows=[])
    return ["--data", str(data)], f"{data} has a header but no rows; give a CSV with labelled rows"


@bad_input
def missing_label_column(tmp, out):
    data = write_labelled_csv(
        tmp / "five.csv", [r[:-1] for r in labelled_rows()], LABELLED_HEADER[:-1]
    )
    found = ", ".join(LABELLED_HEADER[:-1])
    return [
        "--data",
        str(data),
    ], f"{data} has no column 'identity_hate' (found: {found}); pass --labels"


@bad_input
def missing_text_column(tmp, out):
    header = ["id", "text", *LABELS]
    data = write_labelled_csv(tmp / "text.csv", header=header)
    found = ", ".join(header)
    return [
        "--data",
        str(data),
    ], f"{data} has no column 'comment_text' (found: {found}); pass --text-column"


@bad_input
def label_two(tmp, out):
    data = _with_label(tmp, 5, "obscene", "2")
    return [
        "--data",
        str(data),
    ], f"{data} column 'obscene' has value '2' at data row 5; labels must be 0 or 1"


@bad_input
def label_yes(tmp, out):
    data = _with_label(tmp, 10, "insult", "yes")
    return [
        "--data",
        str(data),
    ], f"{data} column 'insult' has value 'yes' at data row 10; labels must be 0 or 1"


@bad_input
def label_empty(tmp, out):
    data = _with_label(tmp, 7, "threat", None)
    return [
        "--data",
        str(data),
    ], f"{data} column 'threat' has an empty value at data row 7; labels must be 0 or 1"


@bad_input
def unscored_without_drop_unlabeled(tmp, out):
    rows = labelled_rows()
    rows[2][2:] = rows[6][2:] = ["-1"] * len(LABELS)
    data = write_labelled_csv(tmp / "unscored.csv", rows)
    return (
        ["--data", str(data)],
        f"{data} has 2 rows labelled -1 (unscored), the first at data row 3; "
        "pass --drop-unlabeled to leave them out",
    )


@bad_input
def bad_label_after_dropped_rows(tmp, out):
    rows = labelled_rows()
    rows[1][2:] = ["-1"] * len(LABELS)
    rows[11][2] = "yes"  # data row 12 of the file, though the 11th row kept
    data = write_labelled_csv(tmp / "mixed.csv", rows)
    return (
        ["--data", str(data), "--drop-unlabeled"],
        f"{data} column 'toxic' has value 'yes' at data row 12; labels must be 0 or 1",
    )


@bad_input
def blank_lines_only(tmp, out):
    data = tmp / "blank.csv"
    data.write_text("\n\n")
    return (
        ["--data", str(data)],
        f"{data} holds only blank space; give a CSV with a header and labelled rows",
    )


@bad_input
def whitespace_only_file(tmp, out):
    data = tmp / "blank.csv"
    data.write_text("   \n \n")
    return (
        ["--data", str(data)],
        f"{data} holds only blank space; give a CSV with a header and labelled rows",
    )


@bad_input
def out_under_a_file(tmp, out):
    data = write_labelled_csv(tmp / "train.csv")
    return (
        ["--data", str(data), "--out", str(data / "model")],
        f"cannot create {data / 'model'}: {data} is a file; pass another --out",
    )


@bad_input
def out_not_empty(tmp, out):
    out.mkdir()
    (out / "keep.txt").write_text("not ours to delete")
    data = write_labelled_csv(tmp / "train.csv")
    return [
        "--data",
        str(data),
    ], f"{out} already exists and is not empty; pass --force to replace it"


@bad_input
def model_folder_missing(tmp, out):
    data, model = write_labelled_csv(tmp / "train.csv"), tmp / "no-such-model"
    return (
        ["--data", str(data), "--model", str(model)],
        f"--model folder {model} does not exist; pass --model with a local Hugging Face folder, "
        "or a hub name",
    )


@bad_input
def model_folder_without_config(tmp, out):
    data, model = write_labelled_csv(tmp / "train.csv"), tmp / "not-a-model"
    model.mkdir()
    return (
        ["--data", str(data), "--model", str(model)],
        f"--model folder {model} has no config.json; pass a folder written by save_pretrained, "
        "or a hub name",
    )


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(case, tiny_model_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    argv, message = BAD_INPUTS[case](tmp_path, out)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    code = main(["--model", str(tiny_model_dir), *QUICK_TRAIN_FLAGS, "--out", str(out), *argv])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.splitlines() == [f"train: error: {message}"]
    assert "Traceback" not in captured.err
    assert captured.out == ""
    # Nothing created, changed or removed: no --out folder, no temp folder, inputs untouched.
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--val-fraction", "1.5"], "--val-fraction must lie between 0 and 1, got 1.5"),
        (["--epochs", "0"], "argument --epochs: must be a positive whole number, got 0"),
        (["--max-len", "4"], "--max-len must be at least 8, got 4"),
        (["--warmup-ratio", "1"], "--warmup-ratio must lie in [0, 1), got 1.0"),
    ],
    ids=["val-fraction", "epochs", "max-len", "warmup-ratio"],
)
def test_bad_flags_exit_2(argv, message, labelled_csv: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", str(labelled_csv), "--out", str(out), *argv])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"python -m train: error: {message}"
    assert not out.exists()


def test_help_runs_as_a_module():
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "train", "--help"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m train")
    assert "--data" in result.stdout and "--drop-unlabeled" in result.stdout
