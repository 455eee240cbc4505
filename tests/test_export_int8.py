"""Every machine-chosen export branch, run on whatever CPU the tests run on.

Each int8 preset is exported and scored here (onnxruntime runs any x86 preset on any x86 CPU);
the preset a CPU gets is a function of its facts, tested with other CPUs' facts passed in; a
NaN anywhere fails the finite-and-close rule in export and in the scorer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import polars as pl
import pytest
import torch
from conftest import comment_rows, write_comments_csv, write_labelled_csv
from onnx import numpy_helper
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from common.cpu import CpuFacts, parse_cpuinfo
from common.variants import Limits
from export import convert
from export.__main__ import main as export_main
from export.quantize import ISAS, isa_for, quantize
from score.__main__ import main as score_main

# Flags as /proc/cpuinfo prints them (the extensions that matter, plus a few others).
AMD_ZEN3 = "fpu sse4_2 avx avx2 fma bmi2 sha_ni"
AMD_ZEN4 = AMD_ZEN3 + " avx512f avx512bw avx512vl avx512_vnni avx512_bf16"
INTEL_SKYLAKE_SP = "fpu sse4_2 avx avx2 fma avx512f avx512cd avx512bw avx512vl"
INTEL_SAPPHIRE_RAPIDS = INTEL_SKYLAKE_SP + " avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"
INTEL_ALDER_LAKE = "fpu sse4_2 avx avx2 fma avx_vnni"


@pytest.mark.parametrize(
    ("flags", "machine", "isa"),
    [
        (AMD_ZEN3, "x86_64", "avx2"),
        (AMD_ZEN4, "x86_64", "avx512_vnni"),
        (INTEL_SKYLAKE_SP, "x86_64", "avx512"),
        (INTEL_SAPPHIRE_RAPIDS, "x86_64", "avx512_vnni"),
        (INTEL_ALDER_LAKE, "x86_64", "avx512_vnni"),  # AVX-VNNI: same kernels, no saturation
        ("fp asimd asimddp", "aarch64", "arm64"),
    ],
)
def test_each_cpu_gets_its_preset(flags: str, machine: str, isa: str):
    cpuinfo = f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n"
    assert isa_for(parse_cpuinfo(cpuinfo, machine)) == isa


@pytest.fixture(scope="module")
def comments(tmp_path_factory) -> Path:
    return write_comments_csv(tmp_path_factory.mktemp("int8") / "comments.csv")


@pytest.mark.parametrize("isa", ISAS)
def test_every_int8_preset_exports_and_scores_here(tmp_path, trained_model_dir, comments, isa):
    out = tmp_path / "onnx"
    argv = ["--model", str(trained_model_dir), "--out", str(out), "--variants", "int8"]
    assert export_main([*argv, "--target-cpu", isa]) == 0
    int8 = json.loads((out / "export.json").read_text())["variants"]["int8"]
    assert (int8["isa"], int8["fp32_holdout"], int8["fp32_nodes"]) == (isa, "none", 0)
    assert int8["reduce_range"] is (isa == "avx512")  # 7-bit weights only where u8*s8 saturates
    assert int8["weights"] == ("QUInt8" if isa == "avx2" else "QInt8")
    # Without VNNI, only a scale per row of activations keeps int8 faithful: the avx2 preset.
    assert int8["activation_scales"] == ("per row" if isa == "avx2" else "per tensor")
    graph = onnx.load(str(out / "model_int8.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert ("MatMulIntegerToFloat" if isa == "avx2" else "MatMulInteger") in ops

    scores = {}
    for variant in ("fp32", "int8"):
        target = tmp_path / f"{variant}.parquet"
        flags = ["--model", str(out), "--provider", "cpu", "--variant", variant, "--quiet"]
        assert score_main([str(comments), str(target), *flags, "--thresholds"]) == 0
        scores[variant] = pl.read_parquet(target)
    labels = json.loads((out / "export.json").read_text())["labels"]
    fp32, q8 = (scores[v].select(labels).to_numpy() for v in ("fp32", "int8"))
    assert scores["int8"]["id"].to_list() == scores["fp32"]["id"].to_list()
    assert np.abs(fp32 - q8).max() <= int8["fidelity"]["limits"]["max_diff"]


def test_feed_forward_holdout_keeps_those_matmuls_in_fp32(tmp_path, trained_model_dir):
    out = tmp_path / "onnx"
    assert (
        export_main(["--model", str(trained_model_dir), "--out", str(out), "--variants", "int8"])
        == 0
    )
    path, info = quantize(out, "model.onnx", "held.onnx", isa="avx2", holdout="ffn")
    assert info["fp32_nodes"] == 4  # 2 layers x (intermediate + output) of the tiny BERT
    graph = onnx.load(str(path)).graph
    kept = [n.name for n in graph.node if n.op_type == "MatMul" and "dense" in n.name]
    assert len([n for n in kept if "/intermediate/" in n or "/output/dense" in n]) == 4


def _error(capsys, prefix: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, err
    return lines[0]


def test_int8_past_its_limits_is_refused_and_said(tmp_path, trained_model_dir, capsys):
    out = tmp_path / "onnx"
    argv = ["--model", str(trained_model_dir), "--out", str(out), "--variants", "int8"]
    assert export_main([*argv, "--max-diff", "0"]) == 1
    line = _error(capsys, "export: error:")
    assert "int8 (fp32 holdout ffn) breaks its limits: max abs diff" in line
    assert (out / "model.onnx").is_file() and not (out / "model_int8.onnx").exists()
    failed = json.loads((out / "export.json").read_text())["failed"]["int8"]
    assert [t["fp32_holdout"] for t in failed["tried"]] == ["none", "ffn-output", "ffn"]
    assert failed["fidelity"]["max_abs_diff"] > 0


def _nan_weight_model(src: Path, dst: Path) -> Path:
    model = AutoModelForSequenceClassification.from_pretrained(src)
    with torch.no_grad():
        model.bert.encoder.layer[0].output.dense.weight[0, 0] = float("nan")
    model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    return dst


def test_a_model_with_a_nan_weight_writes_nothing(tmp_path, trained_model_dir, capsys):
    model = _nan_weight_model(trained_model_dir, tmp_path / "nan-model")
    out = tmp_path / "onnx"
    assert export_main(["--model", str(model), "--out", str(out)]) == 1
    line = _error(capsys, "export: error:")
    assert "PyTorch's own probabilities are not finite" in line
    assert not out.exists() and not list(tmp_path.glob(".onnx.tmp-*"))


def _poison(path: Path, token_id: int) -> None:
    """Set one token's word embedding to NaN in an ONNX file: rows holding it give NaN."""
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name.endswith("word_embeddings.weight"):
            table = numpy_helper.to_array(init).copy()
            table[token_id] = np.nan
            init.CopyFrom(numpy_helper.from_array(table, init.name))
            onnx.save(model, str(path))
            return
    raise AssertionError(f"no word embeddings in {path}")


def test_a_variant_with_nan_output_is_not_written(tmp_path, trained_model_dir, capsys, monkeypatch):
    idiot = AutoTokenizer.from_pretrained(trained_model_dir).convert_tokens_to_ids("idiot")
    real_optimize = convert.optimize

    def optimize_then_poison(out: Path, **kwargs) -> Path:
        path = real_optimize(out, **kwargs)
        _poison(path, idiot)  # a parity text says "idiot"
        return path

    monkeypatch.setattr(convert, "optimize", optimize_then_poison)
    out = tmp_path / "onnx"
    argv = ["--model", str(trained_model_dir), "--out", str(out), "--variants", "optimized"]
    assert export_main(argv) == 1
    line = _error(capsys, "export: error:")
    assert "optimized breaks its limits: output not finite (NaN or inf) > 1e-04" in line
    record = json.loads((out / "export.json").read_text())
    assert set(record["variants"]) == {"fp32"}
    assert record["failed"]["optimized"]["max_abs_diff"]
    assert not (out / "model_optimized.onnx").exists()


def test_scorer_refuses_non_finite_output_naming_variant_and_row(tmp_path, onnx_dir, capsys):
    # Clean comments first, so the first poisoned row lies in a later chunk.
    rows = sorted(comment_rows(), key=lambda r: "idiot" in (r[1] or "").lower())
    comments = write_comments_csv(tmp_path / "comments.csv", rows)
    folder = tmp_path / "onnx"
    folder.mkdir()
    for item in onnx_dir.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    tokenizer = AutoTokenizer.from_pretrained(onnx_dir)
    idiot = tokenizer.convert_tokens_to_ids("idiot")
    _poison(folder / "model.onnx", idiot)
    texts = pl.read_csv(comments)["comment_text"].fill_null("").to_list()
    first = next(i for i, t in enumerate(texts) if idiot in tokenizer(t)["input_ids"])
    assert first > 5  # past the first chunk: the row is counted from the start of the file
    out = tmp_path / "scores.parquet"
    flags = ["--model", str(folder), "--provider", "cpu", "--variant", "fp32", "--quiet"]
    assert score_main([str(comments), str(out), *flags, "--chunk-rows", "5"]) == 2
    line = _error(capsys, "score: error:")
    assert f"the fp32 model gave a non-finite score (NaN or inf) for input row {first} " in line
    assert not out.exists() and not list(tmp_path.glob(".scores.parquet*"))


def test_cpu_facts_name_the_model_and_key_flags():
    facts = CpuFacts("Intel Xeon", "x86_64", frozenset(INTEL_SAPPHIRE_RAPIDS.split()))
    assert facts.describe() == (
        "Intel Xeon (x86_64; avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8)"
    )


def test_int8_study_measures_every_choice(tmp_path, trained_model_dir):
    from export.int8_study import main as study

    data = write_labelled_csv(tmp_path / "labelled.csv")
    argv = ["--model", str(trained_model_dir), "--data", str(data), "--rows", "70"]
    assert study([*argv, "--repeats", "1", "--isas", "avx2", "--out", str(tmp_path / "r")]) == 0
    record = json.loads((tmp_path / "r" / "int8_study.json").read_text())
    keys = [(r["graph"], r["isa"], r["fp32_holdout"]) for r in record["results"]]
    assert keys[:2] == [("fp32", "-", "-"), ("optimized", "-", "-")]
    assert sorted(keys[2:]) == sorted(
        (g, "avx2", h) for g in ("fused", "plain") for h in ("none", "ffn-output", "ffn")
    )
    for row in record["results"]:
        assert row["rows_per_s"] > 0
        if "max_abs_diff" in row:  # 70 rows: only the two probability limits bind
            within = row["max_abs_diff"] <= 0.05 and row["p99_abs_diff"] <= 0.02
            assert row["within_targets"] == within
    assert "| int8 fused | avx2 | ffn |" in (tmp_path / "r" / "int8_study.md").read_text()


def test_flag_limits_bind_from_one_flip_in_the_allowed_share():
    assert Limits().rows_to_bind == 200  # 99.5%: one flip in 200 rows is the whole margin
    assert Limits(min_flag_agreement=0.99).rows_to_bind == 100
    figures = {"max_abs_diff": 0.0, "p99_abs_diff": 0.0, "flag_agreement_min": 0.99}
    assert Limits().broken({**figures, "sample_rows": 199}) == []
    assert Limits().broken({**figures, "sample_rows": 200}) == ["flag agreement 99.00% < 99.5%"]
