"""The CUDA paths a user with a GPU proves with `pytest -m gpu`: training in bf16 autocast, export's
fp16 variant, Ray workers holding a GPU (the scorer's IO binding is in test_score.py, the
benchmark's CUDA engines in test_benchmarks.py). Without usable CUDA a plain run skips them and
`pytest -m gpu` fails them (tests/conftest.py); the last test here proves the latter."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from conftest import QUICK_TRAIN_FLAGS, comment_rows, labelled_rows, write_comments_csv
from conftest import write_labelled_csv as write_labelled

from common.labelled import JIGSAW_LABELS

REPO = Path(__file__).resolve().parents[1]
# Every gpu test of the suite: `pytest -m gpu` without CUDA must fail each one, skip none.
GPU_TESTS = {
    "tests/test_benchmarks.py::test_cuda_run_uses_cuda_for_every_engine",
    "tests/test_cuda.py::test_training_steps_on_cuda_in_bf16_autocast",
    "tests/test_cuda.py::test_export_on_cuda_writes_fp16_within_its_parity_limit",
    "tests/test_cuda.py::test_ray_workers_score_on_their_gpu",
    "tests/test_score.py::test_cuda_io_binding_matches_the_cpu",
}


def _texts(rows: list[list]) -> list[str]:
    return ["" if r[1] is None else r[1] for r in rows]


def _cpu_probs(model_dir: Path, texts: list[str]) -> np.ndarray:
    """PyTorch fp32 on the CPU, one text at a time (no padding): the reference."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.inference_mode():
        return np.concatenate([
            torch.sigmoid(model(**tokenizer([t], truncation=True, return_tensors="pt")).logits)
            .numpy() for t in texts
        ])  # fmt: skip


@pytest.mark.gpu
def test_training_steps_on_cuda_in_bf16_autocast(tmp_path: Path, tiny_model_dir: Path):
    data = write_labelled(tmp_path / "train.csv")
    out = tmp_path / "model"
    flags = [f for f in QUICK_TRAIN_FLAGS if f not in ("--device", "cpu")]
    cmd = [sys.executable, "-m", "train", "--data", str(data), "--model", str(tiny_model_dir)]
    result = subprocess.run(
        [*cmd, *flags, "--device", "cuda", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    args = json.loads((out / "training_args.json").read_text())
    # bf16 autocast wherever the card has bf16 (Ampere and later), fp16 with a scaler before.
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert (args["device"], args["precision"]) == ("cuda", expected)
    stats = json.loads((out / "stats.json").read_text())
    assert [e["epoch"] for e in stats] == [1, 2, 3]
    assert all(math.isfinite(e["train_loss"]) and math.isfinite(e["valid_loss"]) for e in stats)
    assert stats[-1]["train_loss"] < stats[0]["train_loss"]  # the steps really trained
    # The saved weights load on the CPU and give finite probabilities.
    probs = _cpu_probs(out, _texts(labelled_rows()[:8]))
    assert probs.shape == (8, len(JIGSAW_LABELS)) and np.isfinite(probs).all()


@pytest.mark.gpu
def test_export_on_cuda_writes_fp16_within_its_parity_limit(
    cuda_onnx_dir: Path, tiny_model_dir: Path
):
    import onnx
    import onnxruntime as ort

    record = json.loads((cuda_onnx_dir / "export.json").read_text())
    fp16 = record["variants"]["fp16"]
    assert (fp16["file"], fp16["provider"], fp16["limit"]) == ("model_fp16.onnx", "cuda", 1e-2)
    assert 0 < fp16["max_abs_diff"] <= 1e-2  # fp16 rounds: close to PyTorch, not equal
    assert "fp16" not in record["skipped"] and not record["failed"]
    # Really fp16 inside: the float weights are float16; int64 ids in, float32 logits out.
    graph = onnx.load(str(cuda_onnx_dir / "model_fp16.onnx")).graph
    sizes = {onnx.TensorProto.FLOAT: 0, onnx.TensorProto.FLOAT16: 0}
    for tensor in graph.initializer:
        if tensor.data_type in sizes:
            sizes[tensor.data_type] += math.prod(tensor.dims)
    assert sizes[onnx.TensorProto.FLOAT16] > 0.9 * sum(sizes.values())
    assert {i.type.tensor_type.elem_type for i in graph.input} == {onnx.TensorProto.INT64}
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # Checked again here, apart from export's own check: a plain CUDA session, text by text.
    session = ort.InferenceSession(
        str(cuda_onnx_dir / "model_fp16.onnx"), providers=["CUDAExecutionProvider"]
    )
    assert session.get_providers()[0] == "CUDAExecutionProvider"
    texts = _texts(comment_rows())
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cuda_onnx_dir)
    names = {i.name for i in session.get_inputs()}
    probs = []
    for text in texts:
        feed = {k: v.astype(np.int64) for k, v in tokenizer([text], return_tensors="np").items()}
        (logits,) = session.run(["logits"], {k: v for k, v in feed.items() if k in names})
        probs.append(1 / (1 + np.exp(-logits.astype(np.float64))))
    gap = np.abs(np.concatenate(probs) - _cpu_probs(tiny_model_dir, texts)).max()
    assert gap <= 1e-2


@pytest.mark.gpu
def test_ray_workers_score_on_their_gpu(
    tmp_path: Path, cuda_onnx_dir: Path, tiny_model_dir: Path, capsys
):
    from score.__main__ import main

    source = write_comments_csv(tmp_path / "comments.csv")
    out = tmp_path / "scored"
    argv = [str(source), str(out), "--model", str(cuda_onnx_dir), "--engine", "ray"]
    argv += ["--gpus-per-worker", "1", "--num-workers", "1", "--chunk-rows", "7", "--quiet"]
    assert main(argv) == 0
    assert "on cuda (1 Ray worker) with the fp16 model" in capsys.readouterr().out
    manifest = json.loads((out / "_manifest.json").read_text())
    assert (manifest["provider"], manifest["variant"]) == ("cuda", "fp16")
    rows = comment_rows()
    parts = sorted((out / source.stem).glob("part-*.parquet"))
    assert len(parts) == -(-len(rows) // 7)  # one part per chunk of 7 rows
    got = pl.concat([pl.read_parquet(p) for p in parts])
    assert got["id"].to_list() == [r[0] for r in rows]
    reference = _cpu_probs(tiny_model_dir, _texts(rows))
    np.testing.assert_allclose(got.select(JIGSAW_LABELS).to_numpy(), reference, atol=1e-2)


def test_gpu_tests_fail_rather_than_skip_without_cuda(tmp_path: Path):
    """`pytest -m gpu` on a machine without usable CUDA: every gpu test fails at setup, with the
    reason; none is skipped, none passes, so a broken CUDA stack cannot pass for a working one."""
    import xml.etree.ElementTree as ET

    from common.sessions import cuda_usable

    if cuda_usable() and torch.cuda.is_available():
        pytest.skip("CUDA works here: `pytest -m gpu` runs the gpu tests for real")
    report = tmp_path / "gpu.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    cmd += ["--basetemp", str(tmp_path / "inner"), "--junitxml", str(report), "tests"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stdout[-3000:]
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"tests/{case.get('classname').split('.')[-1]}.py::{case.get('name')}"
        outcomes[name] = [(child.tag, child.get("message", "")) for child in case]
    assert set(outcomes) == GPU_TESTS
    for name, children in outcomes.items():  # no child element: the test passed
        assert [tag for tag, _ in children] == ["error"], (name, children)
        assert "-m gpu was asked for but" in children[0][1], name
