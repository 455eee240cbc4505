"""`python -m benchmarks` on the tiny random BERT and a few rows: every engine, every file."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BF16_HERE, labelled_rows, write_comments_csv, write_labelled_csv

from benchmarks import machine
from benchmarks.__main__ import main
from benchmarks.cpu_peak import clock_and_vendor
from benchmarks.engines import in_new_process
from benchmarks.report import markdown as report_markdown
from benchmarks.targets import best_pytorch
from benchmarks.targets import check as targets_check
from benchmarks.texts import generated_texts, load_texts
from benchmarks.torch_engines import NO_BF16, NO_INT8_ON_CUDA, compiled_precision, torch_precisions
from common.cpu import bf16_flag, cpu_flags, cpu_model
from common.errors import UserError
from common.labelled import JIGSAW_LABELS
from score.run import run as score_run

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
# The throughput table's engine for each variant the scorer may run by default.
VARIANT_ENGINE = {
    "fp32": "onnxruntime-fp32",
    "optimized": "onnxruntime-optimized",
    "int8": "onnxruntime-int8",
    "bf16": "openvino-bf16",
}
# The flags reports list, in their order (x86, then Arm; FMA left out: every AVX2 CPU has it).
KEY_FLAGS = [
    "avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "asimd",
    "asimddp",
]  # fmt: skip
AVX2 = frozenset({"avx2", "fma"})
ZEN4 = AVX2 | {"avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni"}
SAPPHIRE_RAPIDS = ZEN4 | {"amx_bf16", "amx_int8"}


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny model exported for the CPU, int8 by the avx2 preset (which any x86 CPU runs)."""
    from export.run import run

    out = tmp_path_factory.mktemp("bench") / "onnx"
    run(model_dir=tiny_model_dir, out=out, target_cpu="avx2", force=True)
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
    (folder,) = (root / "results").iterdir()
    return folder, stdout.getvalue(), code


ALL_RUNTIMES = {"torch", "onnxruntime", "OpenVINO"}


def expected_cpu_engines(default_variant: str) -> list[str]:
    """bf16 rows where this CPU runs bf16 in hardware (export writes bf16 there only), and an
    int8 end-to-end row where the scorer's default is another variant."""
    bf16 = len(BF16_HERE)
    return [
        "pytorch-fp32-padded", "pytorch-fp32-bucketed", *["pytorch-bf16-bucketed"] * bf16,
        "pytorch-int8-bucketed", "pytorch-bf16-compiled" if bf16 else "pytorch-fp32-compiled",
        "onnxruntime-fp32", "onnxruntime-optimized", "onnxruntime-int8",
        *["openvino-bf16"] * bf16, "scorer-end-to-end",
        *["scorer-end-to-end-int8"] * (default_variant != "int8"),
    ]  # fmt: skip


def test_torch_precisions_follow_the_cpu_flags():
    assert torch_precisions("cpu", AVX2) == (["fp32", "int8"], {"bf16": NO_BF16})
    assert "avx512_bf16 nor amx_bf16" in NO_BF16
    assert torch_precisions("cpu", ZEN4) == (["fp32", "bf16", "int8"], {})
    assert torch_precisions("cpu", frozenset({"avx512f", "amx_bf16"}))[0] == [
        "fp32",
        "bf16",
        "int8",
    ]
    assert torch_precisions("cuda", AVX2) == (["fp32", "bf16", "fp16"], {"int8": NO_INT8_ON_CUDA})
    # torch.compile gets the fastest arithmetic within the limits (dynamic int8 is not).
    assert [compiled_precision("cpu", AVX2), compiled_precision("cpu", ZEN4)] == ["fp32", "bf16"]
    assert compiled_precision("cuda", AVX2) == "fp16"


def test_results_folder_is_named_after_the_cpu_and_its_isa():
    assert machine.cpu_slug("AMD EPYC", ZEN4) == "amd-epyc-avx512-vnni-bf16"
    assert machine.cpu_slug("AMD EPYC 7B13 64-Core Processor", AVX2) == "amd-epyc-7b13-avx2"
    xeon = "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert machine.cpu_slug(xeon, SAPPHIRE_RAPIDS) == "intel-xeon-platinum-8481c-amx"
    assert machine.cpu_slug("", frozenset()) == "cpu"
    gpu = {"device": "cuda", "gpu": "NVIDIA H100 80GB HBM3"}
    assert machine.results_dir_name(gpu) == "nvidia-h100-80gb-hbm3"


def test_cpu_run_writes_every_engine_with_finite_figures(cpu_run):
    folder, stdout, code = cpu_run
    assert code == 0
    record = json.loads((folder / "results.json").read_text())
    assert record["env"]["cpu"] == cpu_model()
    assert record["env"]["cpu_flags"] == [f for f in KEY_FLAGS if f in cpu_flags()]
    engines = record["throughput"]["engines"]
    variant = engines["scorer-end-to-end"]["variant"]
    assert list(engines) == expected_cpu_engines(variant)
    for name, row in engines.items():
        assert len(row["seconds"]) == 2, name
        assert all(math.isfinite(row[k]) and row[k] > 0 for k in TIMED), name
        assert row["provider"] == "cpu" and row["failed"] is None, name
        assert name in stdout
    assert record["texts"]["rows"] == 24
    # End to end scores 10 copies of the texts in one file; torch.compile's first pass is apart.
    summary = engines["scorer-end-to-end"]["summary"]
    assert summary["rows"] == 240
    stages = summary["stage_seconds"]  # each stage's busy time, within the run's own
    assert set(stages) == {"read", "predict", "write"}
    assert all(0 < v <= summary["seconds"] for v in stages.values()), stages
    compiled = "pytorch-bf16-compiled" if BF16_HERE else "pytorch-fp32-compiled"
    assert engines[compiled]["first_call_s"] > 0
    assert record["texts"]["repeated"] is False  # 24 of the file's 70 rows
    assert record["env"]["threads"] == 1
    assert record["left_out"] == ({} if BF16_HERE else {"pytorch-bf16-bucketed": NO_BF16})


def test_results_name_the_commit_they_ran_at(cpu_run):
    folder = cpu_run[0]
    commit = json.loads((folder / "results.json").read_text())["env"]["commit"]
    root = Path(__file__).resolve().parent.parent
    if (root / ".git").exists():  # git's own answer, not the benchmark's
        git = ["git", "-C", str(root), "rev-parse", "--short", "HEAD"]
        head = subprocess.run(git, capture_output=True, text=True, check=True).stdout.strip()
        assert commit.split()[0] == head
    else:
        assert commit == "unknown"
    assert f"at commit {commit}." in (folder / "report.md").read_text()


def test_inputs_are_named_by_file_name_size_and_sha256(cpu_run, tmp_path_factory, tiny_model_dir):
    folder = cpu_run[0]
    data = folder.parents[1] / "labelled.csv"
    facts = {
        "source": "labelled.csv",
        "bytes": len(data.read_bytes()),
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
    }
    record = json.loads((folder / "results.json").read_text())
    assert {k: record["texts"][k] for k in facts} == facts
    assert {k: record["quality"][k] for k in facts} == facts
    settings = record["settings"]
    assert (settings["texts"], settings["eval_data"]) == ("labelled.csv", "labelled.csv")
    assert (settings["model_dir"], settings["onnx_dir"]) == (tiny_model_dir.name, "onnx")
    for name in ("results.json", "report.md"):  # no path of this machine, temporary ones included
        text = (folder / name).read_text()
        for path in (str(tmp_path_factory.getbasetemp()), tempfile.gettempdir()):
            assert path not in text, name
    assert "--texts labelled.csv --eval-data labelled.csv`" in (folder / "report.md").read_text()


def test_ceiling_per_arithmetic_and_useful_rates(cpu_run):
    throughput = json.loads((cpu_run[0] / "results.json").read_text())["throughput"]
    engines, ceiling = throughput["engines"], throughput["ceiling"]
    assert set(ceiling["gemm"]) == {"fp32", "int8", *BF16_HERE}
    assert engines["onnxruntime-int8"]["arith"] == engines["pytorch-int8-bucketed"]["arith"]
    assert engines["onnxruntime-optimized"]["arith"] == "fp32"
    # The tiny model (hidden 32, inner 37, 2 layers): 2*(4*32*32 + 2*32*37) per layer, plus
    # attention over the mean length; checked against the formula by hand, not re-derived.
    mean = throughput["profile"]["tokens"] / 24
    layer = 2 * (4 * 32 * 32 + 2 * 32 * 37) + 2 * 2 * mean * 32
    per_token = 2 * layer
    # The exported graph's last layer: keys and values for every token, the rest (queries, the
    # attention output, the feed-forward, one row of attention) once per text.
    exported = layer + 2 * 2 * 32 * 32 + (layer - 2 * 2 * 32 * 32) / mean
    assert ceiling["op_per_token"] == pytest.approx(per_token, rel=1e-3)
    assert ceiling["op_per_token_exported"] == pytest.approx(exported, rel=1e-3)
    for name, row in engines.items():
        useful = ceiling["useful"][name]
        ops = per_token if name.startswith("pytorch") else exported
        assert useful["gops"] == pytest.approx(row["tokens_per_s"] * ops / 1e9, rel=1e-3)
        gemm = ceiling["gemm"][row["arith"]]
        assert gemm["gops"] > 0
        assert useful["share"] == pytest.approx(useful["gops"] / gemm["gops"], rel=1e-9)
        assert useful["share"] <= 1 + 1e-9, name  # no engine above its ceiling
        # At 100% of its ceiling, the exported graph would run at the ceiling's rows/s.
        at_full = row["rows_per_s"] / useful["share"] * ops / exported
        assert gemm["rows_per_s"] == pytest.approx(at_full, rel=1e-3)
    for arith, gemm in ceiling["gemm"].items():
        # Each runtime ran the bare pair; the ceiling is the fastest of them, or of the engines,
        # or the CPU's peak (where /proc/cpuinfo gives a clock) where that is higher.
        runtimes = {name.split()[0] for name in gemm["kernels"]}
        assert runtimes == ({"torch", "OpenVINO"} if arith == "bf16" else ALL_RUNTIMES), arith
        own = [u["gops"] for u in ceiling["useful"].values() if u["arith"] == arith]
        peak = gemm.get("cpu_peak", 0)
        assert gemm["gops"] == pytest.approx(max(*gemm["kernels"].values(), *own, peak), abs=0.05)
    if clock_and_vendor()[0] and "avx2" in cpu_flags():
        assert ceiling["gemm"]["fp32"]["cpu_peak"] > 0


def test_every_engine_agrees_with_pytorch(cpu_run, onnx_dir: Path):
    engines = json.loads((cpu_run[0] / "results.json").read_text())["throughput"]["engines"]
    for name in ["pytorch-fp32-padded", "onnxruntime-fp32", "onnxruntime-optimized"]:
        assert engines[name]["max_abs_diff"] < 1e-4, name
    assert engines["pytorch-int8-bucketed"]["max_abs_diff"] < 0.05  # quantized: close, not equal
    assert engines["onnxruntime-int8"]["max_abs_diff"] < 0.1
    for name in ("pytorch-bf16-bucketed", "openvino-bf16"):  # where the CPU has bf16
        if name in engines:
            assert 0 < engines[name]["max_abs_diff"] < 0.05, name  # 8-bit mantissa: close
    for name in ["pytorch-fp32-padded", "onnxruntime-fp32", "onnxruntime-optimized"]:
        assert engines[name]["limits_broken"] == [], name  # held to the variants' limits
        assert engines[name]["p99_abs_diff"] <= engines[name]["max_abs_diff"]
    # The end-to-end run uses the scorer's default: exported without --eval-data, int8 is not
    # trusted, so bf16 where this CPU has bf16 hardware, else optimized.
    e2e = engines["scorer-end-to-end"]
    assert e2e["variant"] == ("bf16" if bf16_flag(cpu_flags()) else "optimized")
    same = engines[VARIANT_ENGINE[e2e["variant"]]]["max_abs_diff"]
    assert e2e["max_abs_diff"] == pytest.approx(same, abs=1e-6)


def test_quality_matches_a_direct_pytorch_auc(cpu_run, tiny_model_dir: Path):
    from sklearn.metrics import roc_auc_score
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    quality = json.loads((cpu_run[0] / "results.json").read_text())["quality"]
    rows = labelled_rows()
    assert quality["rows"] == len(rows)
    names = list(quality["engines"])
    assert names[0] == "pytorch-fp32-bucketed" and "pytorch-int8-bucketed" in names
    scorer = ["onnxruntime-fp32", "onnxruntime-optimized", "onnxruntime-int8"]
    assert names[-len(scorer) - len(BF16_HERE) :] == scorer + ["openvino-bf16"] * len(BF16_HERE)
    # PyTorch fp32 scored here one text at a time (no padding), AUC by sklearn.
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with torch.inference_mode():
        probs = np.concatenate([
            torch.sigmoid(model(**tokenizer([r[1] or ""], return_tensors="pt")).logits).numpy()
            for r in rows
        ])  # fmt: skip
    truth = np.array([r[2:] for r in rows])
    reference = quality["engines"]["pytorch-fp32-bucketed"]
    for j, label in enumerate(JIGSAW_LABELS):
        if 0 < truth[:, j].sum() < len(rows):
            expected = roc_auc_score(truth[:, j], probs[:, j])
            assert reference["roc_auc"][label] == pytest.approx(expected, abs=1e-9), label
        else:
            assert reference["roc_auc"][label] is None, label  # one class only: no AUC
    scored = [a for a in reference["roc_auc"].values() if a is not None]
    assert reference["roc_auc_macro"] == pytest.approx(np.mean(scored), abs=1e-12)
    assert abs(quality["engines"]["onnxruntime-fp32"]["roc_auc_change"]) < 1e-6


def test_targets_are_the_ratios_of_the_measured_rates(cpu_run):
    folder, stdout, _ = cpu_run
    record = json.loads((folder / "results.json").read_text())
    speed = record["throughput"]["engines"]
    torch_rates = {n: r["rows_per_s"] for n, r in speed.items() if n.startswith("pytorch-")}
    faithful = {n: r for n, r in torch_rates.items() if not speed[n]["limits_broken"]}
    best, fastest = max(faithful, key=faithful.get), max(torch_rates, key=torch_rates.get)
    e2e = speed["scorer-end-to-end"]
    default = VARIANT_ENGINE[e2e["variant"]]
    seed = "pytorch-fp32-padded"
    expected = [
        ("scorer end to end vs the fastest faithful PyTorch", best, 1.5),
        ("scorer end to end vs the fastest PyTorch, any fidelity", fastest, 1.0),
        ("scorer end to end vs the seed's loop", seed, 5.0),
        ("scorer end to end vs its variant alone", default, 0.95),
    ]
    rates = {n: r["rows_per_s"] for n, r in speed.items()}
    expected = [(w, a, e2e["rows_per_s"] / rates[a], g) for w, a, g in expected]
    rows = record["targets"]
    assert len(rows) == 5
    for row, (what, against, ratio, goal) in zip(rows, expected, strict=False):
        assert (row["target"], row["against"]) == (what, against)
        assert row["value"] == pytest.approx(ratio, rel=1e-9)
        assert row["met"] is (ratio >= goal)
        assert ("why" in row) is (ratio < goal)  # a miss says why
        verdict = "met" if ratio >= goal else "MISSED"
        assert f"target: {what}: {ratio:.2f}x ({against}) (>= {goal:g}x) {verdict}" in stdout
    change = record["quality"]["engines"][default]["roc_auc_change"]
    assert rows[4]["engine"] == default and rows[4]["value"] == change
    assert rows[4]["met"] is (abs(change) <= 0.002)


def test_report_chart_and_headline_column(cpu_run):
    folder = cpu_run[0]
    record = json.loads((folder / "results.json").read_text())
    report = (folder / "report.md").read_text()
    for name, row in record["throughput"]["engines"].items():
        assert f"| {name} | cpu | {row['precision']} |" in report
    for heading in ["## Setup", "## Throughput", "## Quality", "## Targets"]:
        assert heading in report
    assert "| x fastest faithful PyTorch |" in report
    assert f"{cpu_model()}, " in report and ", ".join(record["env"]["cpu_flags"]) in report
    assert "real comments" in report  # --texts is a real CSV here, and the report says so
    for row in record["targets"]:
        assert f"| {row['target']} | {row['goal']} | {row['measured']} |" in report
    png = (folder / "throughput.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert not list(folder.glob(".*tmp*"))  # no temporary files left behind
    # A CPU without bf16 instructions: the left-out engine is named with the reason.
    record["left_out"] = {"pytorch-bf16-bucketed": NO_BF16}
    assert f"| pytorch-bf16-bucketed | left out: {NO_BF16} |" in report_markdown(record)


def _speed(**rates) -> dict:
    """Engine rows as results.json holds them; a negative rate marks a non-finite engine."""
    return {
        name: {
            "rows_per_s": abs(rate),
            "group": "pytorch" if name.startswith("pytorch") else "end-to-end",
            "failed": "NaN or inf probabilities (first at text 3)" if rate < 0 else None,
            "variant": "optimized",
        }
        for name, rate in rates.items()
    }


def test_the_end_to_end_run_gets_a_new_process_and_its_errors_come_back(tmp_path: Path):
    # The benchmark process has run PyTorch before the scorer: a user's `python -m score` has not.
    assert in_new_process(os.getpid) != os.getpid()
    missing = tmp_path / "missing.csv"
    with pytest.raises(UserError, match=r"missing\.csv"):  # still one line, exit 2, for the CLI
        in_new_process(score_run, input_path=missing, output_path=tmp_path / "out.parquet",
                       model_dir=tmp_path)  # fmt: skip
    assert not (tmp_path / "out.parquet").exists()


def test_a_non_finite_engine_is_failed_not_ranked():
    speed = _speed(**{
        "pytorch-fp32-padded": 50.0, "pytorch-fp32-bucketed": 120.0,
        "pytorch-bf16-bucketed": -400.0, "scorer-end-to-end": 150.0,
    })  # fmt: skip
    assert best_pytorch(speed) == "pytorch-fp32-bucketed"  # bf16 is fastest, but gave NaN
    record = {"settings": {"device": "cpu"}, "throughput": {"engines": speed}, "model": {}}
    best, _, seed, alone, auc = targets_check(record)
    assert (best["value"], best["met"]) == (pytest.approx(1.25), False)
    assert best["why"] == "needs 180 rows/s, runs 150 rows/s"  # no ceiling in this record
    assert (seed["value"], seed["met"], auc["met"]) == (3.0, False, None)
    assert alone["met"] is None  # the optimized variant was not timed alone in this record
    speed["scorer-end-to-end"]["failed"] = "NaN or inf probabilities (first at text 0)"
    best = targets_check(record)[0]
    assert (best["met"], best["value"]) == (False, None)
    assert best["why"] == "scorer-end-to-end gave NaN or inf probabilities (first at text 0)"


def test_a_miss_says_how_far_the_ceiling_lets_each_engine_go():
    speed = _speed(**{
        "pytorch-fp32-padded": 50.0, "pytorch-bf16-bucketed": 300.0,
        "onnxruntime-optimized": 220.0, "scorer-end-to-end": 200.0,
    })  # fmt: skip
    ceiling = {
        "gemm": {
            "fp32": {"gops": 100.0, "rows_per_s": 400.0},
            "bf16": {"gops": 400.0, "rows_per_s": 1600.0},
        },
        "useful": {
            "onnxruntime-optimized": {"gops": 55.0, "arith": "fp32", "share": 0.55},
            "pytorch-bf16-bucketed": {"gops": 75.0, "arith": "bf16", "share": 0.1875},
        },
    }
    record = {
        "settings": {"device": "cpu"},
        "throughput": {"engines": speed, "ceiling": ceiling},
        "model": {},
    }
    assert targets_check(record)[0]["why"] == (
        "needs 450 rows/s, runs 200 rows/s (220 for the model alone, onnxruntime-optimized); "
        "onnxruntime-optimized is at 55% of the fp32 GEMM ceiling (100.0 GFLOP/s); "
        "pytorch-bf16-bucketed is at 19% of the bf16 GEMM ceiling (400.0 GFLOP/s); "
        "the fastest measured kernels of each arithmetic would allow (rows/s): fp32 400, "
        "bf16 1,600"
    )


def test_faithful_and_any_fidelity_pytorch_are_two_ratios():
    speed = _speed(**{
        "pytorch-fp32-padded": 50.0, "pytorch-bf16-bucketed": 300.0,
        "pytorch-int8-bucketed": 400.0, "scorer-end-to-end": 480.0,
    })  # fmt: skip
    speed["pytorch-int8-bucketed"]["limits_broken"] = ["max abs diff 0.390 > 0.05"]
    record = {"settings": {"device": "cpu"}, "throughput": {"engines": speed}, "model": {}}
    faithful, fastest = targets_check(record)[:2]
    assert (faithful["against"], faithful["value"], faithful["met"]) == (
        "pytorch-bf16-bucketed",
        1.6,
        True,
    )
    assert (fastest["against"], fastest["value"], fastest["met"]) == (
        "pytorch-int8-bucketed",
        1.2,
        True,
    )
    # A scorer outside the limits meets no speed target, however fast.
    speed["scorer-end-to-end"]["limits_broken"] = ["flag agreement 98.00% < 99.5%"]
    faithful = targets_check(record)[0]
    assert (faithful["met"], faithful["measured"]) == (
        False,
        "breaks flag agreement 98.00% < 99.5%",
    )
    assert faithful["why"] == (
        "scorer-end-to-end is outside the variants' fidelity limits against PyTorch fp32"
    )


def test_texts_sample_repeats_the_file_only_past_its_length(tmp_path: Path):
    rows = [[f"id{i}", f"comment number {i}"] for i in range(30)]
    data = write_comments_csv(tmp_path / "comments.csv", rows)
    few, info = load_texts(data, 10, "comment_text", seed=0)
    assert len(set(few)) == 10 and info["repeated"] is False
    many, info = load_texts(data, 100, "comment_text", seed=0)
    assert len(many) == 100 and len(set(many)) == 30 and info["repeated"] is True
    assert load_texts(data, 10, "comment_text", seed=0)[0] == few  # seeded
    assert info["source"] == "comments.csv" and info["bytes"] == data.stat().st_size
    assert info["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()


def test_without_texts_the_texts_are_generated(
    tmp_path: Path, tiny_model_dir: Path, onnx_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """Even where real comments lie at the path that was once the default."""
    write_comments_csv(tmp_path / "shared" / "data" / "jigsaw" / "train.csv")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    argv = [
        "throughput", "--model", str(tiny_model_dir), "--onnx", str(onnx_dir), "--device", "cpu",
        "--rows", "8", "--repeats", "1", "--batch-size", "8", "--threads", "1",
        "--out", str(tmp_path / "results"),
    ]  # fmt: skip
    assert main(argv) == 0
    (folder,) = (tmp_path / "results").iterdir()
    record = json.loads((folder / "results.json").read_text())
    assert (record["texts"], record["settings"]["texts"]) == (
        {"source": "generated", "rows": 8},
        None,
    )
    report = (folder / "report.md").read_text()
    assert "8 rows of generated stand-in texts (no --texts given)" in report
    assert "--texts" not in report.split("\n")[2]  # the command line


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
def test_cuda_run_uses_cuda_for_every_engine(tiny_model_dir: Path, cuda_onnx_dir: Path, tmp_path):
    """`python -m benchmarks --device cuda`: every engine on the card, the report as on the CPU."""
    data = write_labelled_csv(tmp_path / "labelled.csv")
    argv = [
        "all", "--model", str(tiny_model_dir), "--onnx", str(cuda_onnx_dir), "--device", "cuda",
        "--rows", "64", "--repeats", "1", "--texts", str(data), "--eval-data", str(data),
        "--out", str(tmp_path / "results"),
    ]  # fmt: skip
    assert main(argv) == 0
    (folder,) = (tmp_path / "results").iterdir()
    record = json.loads((folder / "results.json").read_text())
    engines = record["throughput"]["engines"]
    assert list(engines) == CUDA_ENGINES
    for name, row in engines.items():
        assert row["provider"] == "cuda" and row["failed"] is None, name
        assert math.isfinite(row["rows_per_s"]) and row["rows_per_s"] > 0, name
    for name in ["onnxruntime-fp32", "onnxruntime-optimized", "onnxruntime-fp16"]:
        assert engines[name]["session_provider"] == "CUDAExecutionProvider"
    assert engines["scorer-end-to-end"]["variant"] == "fp16"  # auto's pick on CUDA
    assert engines["onnxruntime-fp16"]["max_abs_diff"] < 1e-2
    assert {"fp32", "bf16", "fp16"} == set(record["throughput"]["ceiling"]["gemm"])
    assert "onnxruntime-fp16" in record["quality"]["engines"]
    gpu = record["env"]["gpu"]
    assert folder.name == re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")  # the card's name
    report = (folder / "report.md").read_text()
    assert report.startswith(f"# Benchmarks on cuda: {gpu}")
    for heading in ["## Setup", "## Throughput", "## Quality", "## Targets"]:
        assert heading in report
    assert f"| GPU | {gpu} (driver " in report and "| onnxruntime-fp16 | cuda | fp16 |" in report
    assert (folder / "throughput.png").read_bytes().startswith(b"\x89PNG")


def test_tfidf_baseline_separates_the_fixture_labels(tmp_path: Path, capsys):
    from benchmarks.baseline import main as baseline_main

    rows = labelled_rows()
    train = write_labelled_csv(tmp_path / "train.csv", rows)
    unscored = [rows[1][0] + "x", rows[1][1], -1, -1, -1, -1, -1, -1]  # Jigsaw's -1 row
    test = write_labelled_csv(tmp_path / "test.csv", [*rows[::3], unscored])
    out = tmp_path / "baseline.json"
    assert baseline_main(["--data", str(train), "--eval-data", str(test), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for key, path in (("data", train), ("eval_data", test)):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert result[key] == {"source": path.name, "bytes": path.stat().st_size, "sha256": digest}
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
    assert err.startswith("benchmarks.baseline: error: ") and "nope.csv" in err and "\n" not in err


def test_cuda_targets_check_onnxruntime_fp16_against_the_fastest_pytorch_mode():
    from benchmarks.targets import check

    rates = {
        "pytorch-fp32-padded": ("pytorch", 1_000),
        "pytorch-fp32-bucketed": ("pytorch", 8_000),
        "pytorch-bf16-bucketed": ("pytorch", 16_000),
        "pytorch-fp16-bucketed": ("pytorch", 12_000),
        "onnxruntime-fp16": ("onnxruntime", 19_000),
        "scorer-end-to-end": ("scorer", 21_000),
    }
    record = {
        "settings": {"device": "cuda"},
        "model": {"hidden_size": 768, "layers": 12},
        "throughput": {
            "engines": {n: {"group": g, "rows_per_s": r} for n, (g, r) in rates.items()}
        },
    }
    rows = {row["target"]: row for row in check(record)}
    fp16 = rows["ORT fp16 vs the fastest faithful PyTorch"]
    assert fp16["against"] == "pytorch-bf16-bucketed"  # bf16 is the fastest mode here, not fp16
    assert fp16["value"] == pytest.approx(19_000 / 16_000) and fp16["met"] is False
    assert rows["scorer end to end vs the seed's loop"]["value"] == pytest.approx(21.0)
