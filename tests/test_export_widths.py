"""Export checks each variant on one batch at every width the scorer can meet, so a kernel that
goes wrong at one width alone (as OpenVINO's int8 attention did on AMX at exactly 32 tokens)
fails the check even when no checked row's batch happens to have that width."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from common.batching import TextTokenizer, padded
from common.cpu import cpu_flags
from export.checker import PARITY_TEXTS, VariantChecker, width_batches

LONG = " ".join(["Every word of this comment counts toward a very long one indeed."] * 80)


def _tokens(onnx_dir: Path, texts: list[str], max_len: int):
    return TextTokenizer(onnx_dir / "tokenizer.json", max_len).tokenize(texts)


@pytest.mark.parametrize(
    ("max_len", "expected"),
    [
        (64, list(range(2, 65))),
        (512, [*range(2, 129), *range(144, 512, 16), 512]),
    ],
)
def test_one_batch_per_width_each_padding_one_row(onnx_dir: Path, max_len: int, expected):
    sample = _tokens(onnx_dir, [LONG, "a short one", LONG + " and more"], max_len)
    parity = _tokens(onnx_dir, PARITY_TEXTS, max_len)
    tokens, batches = width_batches(parity, sample, max_len)
    feeds = [padded(tokens, rows) for rows in batches]
    assert [f["input_ids"].shape[1] for f in feeds] == expected
    sep = int(sample.ids[sample.lengths[0] - 1])
    for feed, width in zip(feeds, expected, strict=True):
        real = feed["attention_mask"].sum(axis=1)
        assert real.tolist() == [width, max(2, width // 2)]  # the second row is padded
        assert feed["input_ids"][0, width - 1] == sep  # cut as truncation cuts: [SEP] last
        assert feed["input_ids"][0, 0] == sample.ids[0]  # [CLS] first


def _wrong_at_width(model: Path, width: int, out: Path) -> Path:
    """model.onnx with 5 added to every logit of a batch exactly `width` tokens wide."""
    graph = onnx.load(str(model))
    (output,) = [o for o in graph.graph.output if o.name == "logits"]
    producer = next(n for n in graph.graph.node if "logits" in n.output)
    producer.output[list(producer.output).index("logits")] = "logits_raw"
    constants = [
        helper.make_tensor("one", TensorProto.INT64, [], [1]),
        helper.make_tensor("width", TensorProto.INT64, [], [width]),
        helper.make_tensor("bump", TensorProto.FLOAT, [], [5.0]),
    ]
    graph.graph.initializer.extend(constants)
    graph.graph.node.extend(
        [
            helper.make_node("Shape", ["input_ids"], ["shape"]),
            helper.make_node("Gather", ["shape", "one"], ["seq"], axis=0),
            helper.make_node("Equal", ["seq", "width"], ["at_width"]),
            helper.make_node("Cast", ["at_width"], ["at_width_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["at_width_f", "bump"], ["added"]),
            helper.make_node("Add", ["logits_raw", "added"], [output.name]),
        ]
    )
    onnx.save(graph, str(out))
    return out


def test_a_variant_wrong_at_one_width_fails_parity(onnx_dir: Path, tiny_model_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    checker = VariantChecker(onnx_dir / "tokenizer.json", 64, model)
    faulty = _wrong_at_width(onnx_dir / "model.onnx", 32, tmp_path / "model.onnx")
    entry, probs = checker.check("fp32", faulty, "cpu", cpu_flags())
    # the parity texts share one batch, 64 tokens wide: on them alone the fault is invisible
    assert np.abs(probs["parity"] - checker.reference["parity"]).max() < 1e-4
    assert entry["max_abs_diff"] > 0.1 > entry["limit"]
    sound, _ = checker.check("fp32", onnx_dir / "model.onnx", "cpu", cpu_flags())
    assert sound["max_abs_diff"] < sound["limit"]
