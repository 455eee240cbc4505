"""Row-wise int8 (the avx2 preset) on a two-layer graph, against the same arithmetic in numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from export.quantize_rows import quantize_rows

K, H, N = 16, 24, 8
RNG = np.random.default_rng(0)
W1 = RNG.normal(0, 0.3, (K, H)).astype(np.float32)
B1 = RNG.normal(0, 0.1, H).astype(np.float32)
W2 = RNG.normal(0, 0.3, (H, N)).astype(np.float32)
B2 = RNG.normal(0, 0.1, N).astype(np.float32)


def _graph(path: Path, shared_bias: bool = False, last_bias: bool = True) -> Path:
    """x @ W1 + B1 -> GELU -> @ W2 + B2: a BERT feed-forward block; `shared_bias`: B2 is also
    read by another node (z = s + B2), as exporters share equal constants; without
    `last_bias`, the last MatMul writes the graph's output."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"], name="up"),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Gelu", ["h1"], ["g"], domain="com.microsoft"),
        helper.make_node("MatMul", ["g", "w2"], ["y0" if last_bias else "y"], name="down"),
    ]
    if last_bias:
        nodes.append(helper.make_node("Add", ["b2", "y0"], ["y"]))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", K])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", N])]
    if shared_bias:
        nodes.append(helper.make_node("Add", ["s", "b2"], ["z"]))
        inputs.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, [N]))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [N]))
    weights = [
        numpy_helper.from_array(a, n) for a, n in ((W1, "w1"), (B1, "b1"), (W2, "w2"), (B2, "b2"))
    ]
    graph = helper.make_graph(nodes, "ffn", inputs, outputs, weights)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets, ir_version=8), str(path))
    return path


def _run(path: Path, x: np.ndarray, **more) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x, **more})


def _weights(w):
    low, high = np.minimum(w.min(0), 0), np.maximum(w.max(0), 0)
    scale = ((high - low) / np.float32(255)).astype(np.float32)
    zero = np.round(-low / scale)
    return (np.clip(np.round(w / scale) + zero, 0, 255) - zero) * scale


def _rows(x, low):
    """Each row on 256 levels from `low` (per row) to its max (at least 0)."""
    high = np.maximum(x.max(-1, keepdims=True), 0)
    span = (high - low).astype(np.float32)
    steps = np.rint((x - low) * (np.float32(255) / span)).clip(0, 255)
    return low + steps * (span / np.float32(255))


def _gelu(v):
    from scipy.special import erf

    return (0.5 * v * (1 + erf(v / np.sqrt(2)))).astype(np.float32)


def _expected(x, last_bias=B2):
    """The row-wise int8 feed-forward block, in numpy."""
    h = _rows(x, np.minimum(x.min(-1, keepdims=True), 0)) @ _weights(W1) + B1
    g = _gelu(h)
    return (_rows(g + np.float32(0.17), 0) - np.float32(0.17)) @ _weights(W2) + last_bias


def test_each_row_gets_its_own_scale_and_gelu_rows_start_at_its_floor(tmp_path: Path):
    x = RNG.normal(0, 1, (2, 5, K)).astype(np.float32)
    x[0, 0] *= 300  # one outlier token, which would set a per-tensor scale for every row
    source = _graph(tmp_path / "ffn.onnx")
    target = tmp_path / "rows.onnx"
    assert quantize_rows(source, target, exclude=[]) == 2

    expected = _expected(x)
    (got,) = _run(target, x)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
    (exact,) = _run(source, x)
    small = (slice(None), slice(1, None))  # every token but the outlier keeps int8 precision
    assert np.abs(got - exact)[small].max() < 0.05 * np.abs(exact[small]).max()
    # The shift went into the last Add's bias: no extra pass over the output.
    ops = [n.op_type for n in onnx.load(str(target)).graph.node]
    assert ops.count("MatMulIntegerToFloat") == 2 and ops.count("Add") == 4


def test_excluded_matmuls_stay_in_fp32(tmp_path: Path):
    source = _graph(tmp_path / "ffn.onnx")
    target = tmp_path / "rows.onnx"
    assert quantize_rows(source, target, exclude=["down"]) == 1
    graph = onnx.load(str(target)).graph
    assert [n.name for n in graph.node if n.op_type == "MatMul"] == ["down"]
    x = RNG.normal(0, 1, (3, 4, K)).astype(np.float32)
    np.testing.assert_allclose(_run(target, x)[0], _run(source, x)[0], atol=0.05)


def test_a_bias_shared_with_another_node_is_left_as_it_was(tmp_path: Path):
    source = _graph(tmp_path / "ffn.onnx", shared_bias=True)
    target = tmp_path / "rows.onnx"
    assert quantize_rows(source, target, exclude=[]) == 2
    x = RNG.normal(0, 1, (2, 5, K)).astype(np.float32)
    s = RNG.normal(0, 1, N).astype(np.float32)
    y, z = _run(target, x, s=s)
    np.testing.assert_allclose(y, _expected(x), rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(z, s + B2)  # the other reader of B2 still adds B2


def test_a_gelu_matmul_without_a_bias_after_it_gets_its_own_unshift(tmp_path: Path):
    source = _graph(tmp_path / "ffn.onnx", last_bias=False)
    target = tmp_path / "rows.onnx"
    assert quantize_rows(source, target, exclude=[]) == 2
    x = RNG.normal(0, 1, (2, 5, K)).astype(np.float32)
    (y,) = _run(target, x)
    np.testing.assert_allclose(y, _expected(x, last_bias=0), rtol=1e-3, atol=1e-3)
