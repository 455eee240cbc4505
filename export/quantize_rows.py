"""Dynamic int8 with one scale per row of activations: the int8 of CPUs without VNNI or AMX.

onnxruntime's own dynamic int8 gives each activation tensor one scale, for the whole batch; a
few outlier tokens and channels then set it for every row, and a fine-tuned BERT strays past the
fidelity limits (docs/variants.md). Here each row (one token's vector) gets its own range, in
standard ONNX operators and onnxruntime's MatMulIntegerToFloat:

    lo, hi = min(row, 0), max(row, 0)       per row
    q = round((x - lo) * 255 / (hi - lo))   u8
    x @ W ~= (hi - lo) / 255 * (q @ Wq) + lo * colsum(Wq)

GELU's output is never below -0.17, so the feed-forward output projection's rows are shifted up
by 0.17 and quantized from 0 instead, and the shift comes back through the next node's bias.
Weights are u8 per column, so the products run through the kernel that widens to 16 bits
before multiplying and never saturates (u8 x s8 pairs can, on CPUs without VNNI).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LEVELS = 255.0
TINY_RANGE = 1e-8  # a row of zeros still divides by something
GELU_FLOOR = -0.17  # min over x of x * Phi(x) is -0.16997
GELUS = {"Gelu", "BiasGelu", "FastGelu"}
BIAS_INPUT = {"Add": None, "BiasGelu": 1, "SkipLayerNormalization": 4}  # None: its constant input


def quantize_rows(source: Path, target: Path, exclude: list[str]) -> int:
    """Write `target`: `source` with every MatMul by a constant 2-D weight in row-wise int8,
    but the nodes named in `exclude`; returns how many MatMuls were quantized."""
    import onnx
    from onnx import helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    added: list = []
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    read_by: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            read_by.setdefault(i, []).append(n)
    rows: dict[str, tuple[str, str, str | None]] = {}  # input -> (q, row step, row minimum)
    replaced: dict[int, list] = {}  # node index -> its nodes
    for index, node in enumerate(graph.node):
        w = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if w is None or len(w.dims) != 2 or node.name in exclude:
            continue
        new = []
        if node.input[0] not in rows:
            gelu = made_by.get(node.input[0]) in GELUS
            quantizer = _gelu_rows if gelu else _rows
            nodes, rows[node.input[0]] = quantizer(node.input[0], _prefix(node) + "_rows", added)
            new += nodes
        row, quantized = rows[node.input[0]], _weights(onnx.numpy_helper.to_array(w))
        output, unshift = node.output[0], []
        if row[2] is None:  # shifted GELU rows: x @ W = (x + 0.17) @ W - 0.17 colsum(W)
            shift = -GELU_FLOOR * quantized[3]
            output, unshift = _unshift(node, shift, read_by.get(output, []), weights, added)
        replaced[index] = new + _matmul(node, quantized, row, output, added) + unshift
    nodes = [m for i, n in enumerate(graph.node) for m in replaced.get(i, [n])]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + added)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(target))
    return len(replaced)


def _prefix(node) -> str:
    return (node.name or node.output[0]).replace("/", "_").strip("_")


def _const(added: list, name: str, value) -> str:
    from onnx import numpy_helper

    added.append(numpy_helper.from_array(np.asarray(value), name))
    return name


def _op(p: str, kind: str, inputs: list[str], output: str, **attrs):
    from onnx import helper

    return helper.make_node(kind, inputs, [f"{p}_{output}"], **attrs)


def _rows(x: str, p: str, added: list):
    """Nodes that turn `x` into u8 rows from each row's min to its max (both taken to include
    0); (nodes, (q, step, min)): x ~= min + step * q."""
    zero = _const(added, f"{p}_zero", np.float32(0))
    nodes = [
        _op(p, "ReduceMax", [x], "max_row", axes=[-1], keepdims=1),
        _op(p, "ReduceMin", [x], "min_row", axes=[-1], keepdims=1),
        _op(p, "Max", [f"{p}_max_row", zero], "hi"),
        _op(p, "Min", [f"{p}_min_row", zero], "lo"),
        _op(p, "Sub", [f"{p}_hi", f"{p}_lo"], "span"),
        _op(p, "Sub", [x, f"{p}_lo"], "from_lo"),
    ]
    return nodes + _to_u8(p, f"{p}_from_lo", f"{p}_span", added), (f"{p}_q", f"{p}_step", f"{p}_lo")


def _gelu_rows(x: str, p: str, added: list):
    """GELU outputs shifted to >= 0 and quantized from 0 (no per-row minimum to carry);
    (nodes, (q, step, None)): x + 0.17 ~= step * q."""
    floor = _const(added, f"{p}_floor", np.float32(-GELU_FLOOR))
    nodes = [
        _op(p, "Add", [x, floor], "shifted"),
        _op(p, "ReduceMax", [f"{p}_shifted"], "span", axes=[-1], keepdims=1),
    ]
    return nodes + _to_u8(p, f"{p}_shifted", f"{p}_span", added), (f"{p}_q", f"{p}_step", None)


def _to_u8(p: str, base: str, span: str, added: list) -> list:
    """q = round(base * 255 / span) as u8, and step = span / 255, per row."""
    levels = _const(added, f"{p}_levels", np.float32(LEVELS))
    return [
        _op(p, "Max", [span, _const(added, f"{p}_tiny", np.float32(TINY_RANGE))], "range"),
        _op(p, "Div", [levels, f"{p}_range"], "per_step"),
        _op(p, "Div", [f"{p}_range", levels], "step"),
        _op(p, "Mul", [base, f"{p}_per_step"], "steps"),
        _op(p, "QuantizeLinear", [f"{p}_steps", _const(added, f"{p}_one", np.float32(1)),
                                  _const(added, f"{p}_u8_zero", np.uint8(0))], "q"),
    ]  # fmt: skip


def _weights(w: np.ndarray):
    """u8 per column from each column's min to its max (both taken to include 0); returns
    (wq, scale, zero point, column sums of the weights as the int8 product sees them)."""
    w = w.astype(np.float32)
    low, high = np.minimum(w.min(0), 0), np.maximum(w.max(0), 0)
    scale = np.maximum((high - low) / LEVELS, np.float32(1e-12)).astype(np.float32)
    zero_point = np.round(-low / scale).astype(np.uint8)
    wq = np.clip(np.round(w / scale) + zero_point, 0, 255).astype(np.uint8)
    colsum = ((wq.astype(np.float32) - zero_point) * scale).sum(0).astype(np.float32)
    return wq, scale, zero_point, colsum


def _matmul(node, quantized: tuple, row: tuple, output: str, added: list) -> list:
    """MatMulIntegerToFloat on the u8 rows, times each row's step, plus min x colsum(W), into
    `output`."""
    from onnx import helper

    q, step, lo = row
    p = _prefix(node)
    wq, scale, zero_point, colsum = quantized
    inputs = [q, _const(added, f"{p}_wq", wq), _const(added, f"{p}_one", np.float32(1)),
              _const(added, f"{p}_w_scale", scale), _const(added, f"{p}_a_zero", np.uint8(0)),
              _const(added, f"{p}_w_zero", zero_point)]  # fmt: skip
    product = helper.make_node(
        "MatMulIntegerToFloat", inputs, [f"{p}_int8"], domain="com.microsoft"
    )
    if lo is None:
        return [product, helper.make_node("Mul", [f"{p}_int8", step], [output])]
    return [
        product,
        _op(p, "Mul", [f"{p}_int8", step], "scaled"),
        _op(p, "Mul", [lo, _const(added, f"{p}_colsum", colsum)], "from_min"),
        helper.make_node("Add", [f"{p}_scaled", f"{p}_from_min"], [output]),
    ]


def _unshift(node, shift: np.ndarray, readers: list, weights: dict, added: list):
    """Take `shift` from the MatMul's output: through the bias of its one reader where that has
    a constant one (no extra pass over the output), else by a new Add that writes the output's
    name (a graph output too). Returns (where the product writes, the nodes to add)."""
    from onnx import helper, numpy_helper

    p, out = _prefix(node), node.output[0]
    if len(readers) == 1 and readers[0].op_type in BIAS_INPUT:
        reader = readers[0]
        at = BIAS_INPUT[reader.op_type]
        places = [i for i, name in enumerate(reader.input) if name in weights and at in (None, i)]
        if len(places) == 1 and len(weights[reader.input[places[0]]].dims) == 1:
            bias = numpy_helper.to_array(weights[reader.input[places[0]]]).astype(np.float32)
            # A new constant, not the old one changed: the exporter shares equal constants (a
            # random model's zero biases, a LayerNorm's beta) between nodes that keep theirs.
            reader.input[places[0]] = _const(added, f"{p}_bias", bias - shift)
            return out, []
    unshift = _const(added, f"{p}_unshift", -shift)
    return f"{p}_shifted", [helper.make_node("Add", [f"{p}_shifted", unshift], [out])]
