"""`python -m benchmarks` on the tiny random BERT and a few rows: every engine, every file."""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import labelled_rows, write_comments_csv, write_labelled_csv

from benchmarks.__main__ import main
from benchmarks.texts import generated_texts, load_texts

CPU_ENGINES = [
    "pytorch-fp32-padded",
    "pytorch-fp32-bucketed",
    "onnxruntime-fp32",
    "onnxruntime-optimized",
    "onnxruntime-int8",
    "scorer-end-to-end",
    "scorer-end-to-end-int8",
]
CUDA_ENGINES = [
    "pytorch-fp32-padded",
    "pytorch-fp32-bucketed",
    "pytorch-bf16-bucketed",
    "pytorch-fp16-bucketed",
    "onnxruntime-fp32",
    "onnxruntime-optimized",
    "onnxruntime-fp16",
    "scorer-end-to-end",
]
TIMED = ["median_s", "rows_per_s", "tokens_per_s", "rows_per_s_min", "rows_per_s_max"]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    from export.run import run

    out = tmp_path_factory.mktemp("bench") / "onnx"
    run(model_dir=tiny_model_dir, out=out, force=True)
    return out


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, onnx_dir: Path):
    """One `all` run on the CPU; returns (results folder, stdout, return code)."""
    root = tmp_path_factory.mktemp("bench-run")
    data = write_labelled_csv(root / "labelled.csv")
    argv = [
        "all", "--model", str(tiny_model_dir), "--onnx", str(onnx_dir), "--device", "cpu",
        "--rows", "24", "--repeats", "2", "--batch-size", "8", "--threads", "1",
        "--texts", str(data), "--eval-data", str(data), "--out", str(root / "results"),
    ]  # fmt: skip
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(argv)
    return root / "results" / "cpu", stdout.getvalue(), code


def test_cpu_run_writes_every_engine_with_finite_figures(cpu_run):
    folder, stdout, code = cpu_run
    assert code == 0
    record = json.loads((folder / "results.json").read_text())
    engines = record["throughput"]["engines"]
    assert list(engines) == CPU_ENGINES
    for name, row in engines.items():
        assert len(row["seconds"]) == 2, name
        assert all(math.isfinite(row[k]) and row[k] > 0 for k in TIMED), name
        assert row["provider"] == "cpu", name
        assert name in stdout
    assert record["texts"]["rows"] == 24
    assert record["texts"]["repeated"] is False  # 24 of the file's 70 rows
    assert record["env"]["threads"] == 1
    ceiling = record["throughput"]["ceiling"]
    assert ceiling["gemm"]["gflops"] > 0 and ceiling["gemm"]["dtype"] == "float32"
    assert list(ceiling["useful_gflops"]) == CPU_ENGINES
    # The tiny model (hidden 32, inner 37, 2 layers): 2*(4*32*32 + 2*32*37) per layer, plus
    # attention over the mean length; checked against the formula by hand, not re-derived.
    tokens = record["throughput"]["profile"]["tokens"]
    assert ceiling["flop_per_token"] == pytest.approx(
        2 * (2 * (4 * 32 * 32 + 2 * 32 * 37) + 2 * 2 * (tokens / 24) * 32), rel=1e-3
    )


def test_every_engine_agrees_with_pytorch(cpu_run):
    engines = json.loads((cpu_run[0] / "results.json").read_text())["throughput"]["engines"]
    for name in ["pytorch-fp32-padded", "onnxruntime-fp32", "onnxruntime-optimized"]:
        assert engines[name]["max_abs_diff"] < 1e-4, name
    # The end-to-end run uses the scorer's default variant (optimized on the CPU).
    assert engines["scorer-end-to-end"]["variant"] == "optimized"
    assert engines["scorer-end-to-end"]["max_abs_diff"] < 1e-4
    assert engines["scorer-end-to-end-int8"]["variant"] == "int8"
    for name in ["onnxruntime-int8", "scorer-end-to-end-int8"]:
        assert engines[name]["max_abs_diff"] < 0.1  # quantized: close, not equal


def test_quality_has_auc_per_engine_and_label(cpu_run):
    quality = json.loads((cpu_run[0] / "results.json").read_text())["quality"]
    assert quality["rows"] == len(labelled_rows())
    assert list(quality["engines"]) == [
        "pytorch-fp32-bucketed",
        "onnxruntime-fp32",
        "onnxruntime-optimized",
        "onnxruntime-int8",
    ]
    for name, row in quality["engines"].items():
        assert 0 <= row["roc_auc_macro"] <= 1, name
        assert row["roc_auc"]["threat"] is None  # no positive in the fixture: no AUC
        assert 0 <= row["roc_auc"]["toxic"] <= 1, name
    assert abs(quality["engines"]["onnxruntime-fp32"]["roc_auc_change"]) < 1e-6


def test_report_chart_and_targets(cpu_run):
    folder = cpu_run[0]
    report = (folder / "report.md").read_text()
    for name in CPU_ENGINES:
        assert f"| {name} |" in report
    for heading in ["## Setup", "## Throughput", "## Quality", "## Targets", "## Reading"]:
        assert heading in report
    assert "real comments" in report  # --texts is a real CSV here, and the report says so
    png = (folder / "throughput.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    targets = json.loads((folder / "results.json").read_text())["targets"]
    assert [t["met"] in (True, False) for t in targets] == [True, True, True]
    assert all(math.isfinite(t["value"]) for t in targets)
    assert not list(folder.glob(".*tmp*"))  # no temporary files left behind


def test_texts_sample_repeats_the_file_only_past_its_length(tmp_path: Path):
    rows = [[f"id{i}", f"comment number {i}"] for i in range(30)]
    data = write_comments_csv(tmp_path / "comments.csv", rows)
    few, info = load_texts(data, 10, "comment_text", seed=0)
    assert len(set(few)) == 10 and info["repeated"] is False
    many, info = load_texts(data, 100, "comment_text", seed=0)
    assert len(many) == 100 and len(set(many)) == 30 and info["repeated"] is True
    assert load_texts(data, 10, "comment_text", seed=0)[0] == few  # seeded


def test_generated_texts_have_comment_like_lengths(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    texts = generated_texts(2000, seed=0)
    assert texts == generated_texts(2000, seed=0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    lengths = np.array([len(ids) for ids in tokenizer(texts)["input_ids"]])
    assert 30 <= np.median(lengths) <= 65  # Jigsaw train: median 46 tokens
    assert 0.08 <= np.mean(lengths > 128) <= 0.3  # Jigsaw train: 16.9% over 128


def test_missing_onnx_folder_is_one_line_exit_2(tiny_model_dir: Path, tmp_path: Path, capsys):
    code = main(["throughput", "--model", str(tiny_model_dir), "--onnx", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("benchmarks: error:") and "export.json" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "nope").exists()


def test_bert_base_with_quality_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["quality", "--bert-base"])
    assert exit_info.value.code == 2
    assert "random weights" in capsys.readouterr().err


def test_help_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "python -m benchmarks" in result.stdout and "--bert-base" in result.stdout


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_run_uses_cuda_for_every_engine(tiny_model_dir: Path, tmp_path: Path):
    from export.run import run as export_run

    onnx = export_run(model_dir=tiny_model_dir, out=tmp_path / "onnx", device="cuda", force=True)
    assert "fp16" in onnx["variants"]
    data = write_labelled_csv(tmp_path / "labelled.csv")
    argv = [
        "throughput", "--model", str(tiny_model_dir), "--onnx", str(tmp_path / "onnx"),
        "--device", "cuda", "--rows", "64", "--repeats", "1", "--texts", str(data),
        "--out", str(tmp_path / "results"),
    ]  # fmt: skip
    assert main(argv) == 0
    (folder,) = (tmp_path / "results").iterdir()
    assert folder.name != "cpu"  # named after the card
    record = json.loads((folder / "results.json").read_text())
    engines = record["throughput"]["engines"]
    assert list(engines) == CUDA_ENGINES
    for name, row in engines.items():
        assert row["provider"] == "cuda", name
        assert math.isfinite(row["rows_per_s"]), name
    for name in ["onnxruntime-fp32", "onnxruntime-optimized", "onnxruntime-fp16"]:
        assert engines[name]["session_provider"] == "CUDAExecutionProvider"
    assert engines["onnxruntime-fp16"]["max_abs_diff"] < 1e-2
    assert record["env"]["gpu"]


def test_tfidf_baseline_separates_the_fixture_labels(tmp_path: Path, capsys):
    from benchmarks.baseline import main as baseline_main

    rows = labelled_rows()
    train = write_labelled_csv(tmp_path / "train.csv", rows)
    unscored = [rows[1][0] + "x", rows[1][1], -1, -1, -1, -1, -1, -1]  # Jigsaw's -1 row
    test = write_labelled_csv(tmp_path / "test.csv", [*rows[::3], unscored])
    out = tmp_path / "baseline.json"
    assert baseline_main(["--data", str(train), "--eval-data", str(test), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["eval_rows"] == len(rows[::3])
    assert result["eval_rows_labelled_-1_left_out"] == 1
    assert set(result["roc_auc"]) == {
        "toxic",
        "severe_toxic",
        "obscene",
        "threat",
        "insult",
        "identity_hate",
    }
    assert result["roc_auc"]["toxic"] > 0.9  # the fixture's toxic rows share their words
    # The fixture has no severe_toxic, threat or identity_hate rows: reported, not scored.
    one_class = ["severe_toxic", "threat", "identity_hate"]
    assert result["labels_with_one_class_in_data"] == one_class
    assert all(result["roc_auc"][name] is None for name in one_class)


def test_tfidf_baseline_bad_csv_is_one_line_exit_2(tmp_path: Path, capsys):
    from benchmarks.baseline import main as baseline_main

    missing = tmp_path / "nope.csv"
    assert baseline_main(["--data", str(missing), "--eval-data", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nope.csv" in err and "\n" not in err
