"""How fast this device does the model's arithmetic at all, to read the engines' rates against:
a bare pair of matrix multiplies of the model's feed-forward shapes, in each arithmetic the
engines use, run by each runtime the engines use (torch; on the CPU onnxruntime and OpenVINO
too). Each arithmetic's ceiling is the fastest of those, or of the engines themselves where one
does better on the whole model, so no engine shows above 100%; on the CPU, the CPU's own peak
(benchmarks/cpu_peak.py) where that is higher. An engine near its ceiling cannot get much faster
without doing less or cheaper arithmetic."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.cpu_peak import clock_and_vendor, peak_gops
from benchmarks.timing import synchronizer
from benchmarks.torch_engines import quantize_linear_int8
from common.cpu import this_cpu, usable_cores


def ops_per_token(config, mean_tokens: float, cls_only: bool = False) -> float:
    """Multiply-adds x 2 of one token through the encoder: the linear layers, plus attention's
    two products over a sequence of `mean_tokens` (embeddings and the small head left out).
    `cls_only`: the exported graph's last layer, which computes keys and values for every token
    and the rest for the [CLS] position alone (export/cls_only.py)."""
    hidden, inner = config.hidden_size, config.intermediate_size
    linear = 2 * (4 * hidden * hidden + 2 * hidden * inner)
    attention = 2 * 2 * mean_tokens * hidden
    whole = config.num_hidden_layers * (linear + attention)
    if not cls_only:
        return whole
    keys_values = 2 * 2 * hidden * hidden  # per token
    per_text = linear - keys_values + attention  # one query row over the text's tokens
    return whole - (linear + attention) + keys_values + per_text / mean_tokens


def _torch_kernel(device: str, arith: str, rows: int, hidden: int, inner: int):
    """(rows x hidden) @ (hidden x inner) @ (inner x hidden) in `arith` through torch."""
    if arith == "int8":
        # torch._int_mm has no VNNI path on the CPU; the dynamic int8 Linear (fbgemm/oneDNN
        # u8 x s8) is what PyTorch's int8 engine runs, activation quantizing included.
        pair = torch.nn.Sequential(torch.nn.Linear(hidden, inner), torch.nn.Linear(inner, hidden))
        quantized, x = quantize_linear_int8(pair.eval()), torch.randn(rows, hidden)
        return lambda: quantized(x)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[arith]
    x = torch.randn(rows, hidden, device=device, dtype=dtype)
    up = torch.randn(hidden, inner, device=device, dtype=dtype)
    down = torch.randn(inner, hidden, device=device, dtype=dtype)
    return lambda: (x @ up) @ down


def onnx_pair(hidden: int, inner: int, int8: bool) -> bytes:
    """The same pair as an ONNX graph; `int8`: in QDQ form (u8 activations, s8 weights, one
    scale each), which onnxruntime and OpenVINO both run as int8 matrix multiplies."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"up": (hidden, inner), "down": (inner, hidden)}
    nodes, inits, x = [], [], "x"
    for name, shape in weights.items():
        w = rng.standard_normal(shape).astype(np.float32)
        if int8:
            inits += [numpy_helper.from_array(np.int8(np.clip(w * 32, -127, 127)), f"{name}_q")]
            inits += [numpy_helper.from_array(np.float32(1 / 32), f"{name}_s")]
            inits += [numpy_helper.from_array(np.float32(0.05), f"{name}_xs")]
            inits += [numpy_helper.from_array(np.uint8(128), f"{name}_xz")]
            nodes += [
                helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s"], [f"{name}_w"]),
                helper.make_node("QuantizeLinear", [x, f"{name}_xs", f"{name}_xz"], [f"{x}_q"]),
                helper.make_node(
                    "DequantizeLinear", [f"{x}_q", f"{name}_xs", f"{name}_xz"], [f"{x}_dq"]
                ),
            ]
            x = f"{x}_dq"
        else:
            inits.append(numpy_helper.from_array(w, f"{name}_w"))
        nodes.append(helper.make_node("MatMul", [x, f"{name}_w"], [f"{name}_out"]))
        x = f"{name}_out"
    graph = helper.make_graph(
        nodes,
        "gemm_pair",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", hidden])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["rows", hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _runtime_kernels(arith: str, rows: int, hidden: int, inner: int, threads: int, tmp: Path):
    """{name: step} of onnxruntime and OpenVINO running the pair in `arith` on the CPU."""
    from common.openvino_session import OpenVinoSession
    from common.sessions import open_session

    path = tmp / f"pair-{arith}.onnx"
    path.write_bytes(onnx_pair(hidden, inner, int8=arith == "int8"))
    feed = {"x": np.random.default_rng(1).standard_normal((rows, hidden)).astype(np.float32)}
    kernels = {}
    if arith in ("fp32", "int8"):
        ort_session = open_session(path, "cpu", threads)
        kernels[f"onnxruntime {arith}"] = lambda: ort_session.run(None, feed)
    ov_precision = "bf16" if arith == "bf16" else "fp32"  # int8: the QDQ pairs run in int8
    if arith in ("fp32", "bf16", "int8"):
        ov_session = OpenVinoSession(path, ov_precision, threads)
        output = [ov_session.compiled.outputs[0].get_any_name()]
        kernels[f"OpenVINO {arith}"] = lambda: ov_session.run(output, feed)
    return kernels


def _rate(step, sync, seconds: float = 1.5) -> float:
    """Calls per second of `step` over `seconds`, after a warm-up."""
    with torch.inference_mode():
        for _ in range(3):
            step()  # warm-up: thread pools, kernel selection, weight packing
        sync()
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            step()
            count += 1
        sync()
    return count / (time.perf_counter() - start)


def gemm_rate(device: str, arith: str, rows: int, hidden: int, inner: int, threads: int) -> dict:
    """G(FL)OP/s of the feed-forward pair in one arithmetic: each runtime's, and the best."""
    kernels = {f"torch {arith}": _torch_kernel(device, arith, rows, hidden, inner)}
    failed = None
    with tempfile.TemporaryDirectory(prefix="ceiling-") as tmp:
        try:
            if device == "cpu":
                kernels |= _runtime_kernels(arith, rows, hidden, inner, threads, Path(tmp))
        except Exception as e:  # a runtime that cannot run it here: the others still count
            failed = f"{type(e).__name__}: {e}".splitlines()[0]
        sync = synchronizer(device)
        per_call = 2 * 2 * rows * hidden * inner / 1e9
        each = {name: round(per_call * _rate(step, sync), 1) for name, step in kernels.items()}
    kernel = max(each, key=each.get)
    shape = f"({rows}x{hidden}) @ ({hidden}x{inner}) @ ({inner}x{hidden})"
    out = {"gops": each[kernel], "shape": shape, "kernel": kernel, "kernels": each}
    return out | ({"kernels_failed": failed} if failed else {})


def raise_to_peak(gemm: dict, cores: int, cpuinfo: Path = Path("/proc/cpuinfo")) -> None:
    """Each arithmetic's ceiling becomes the CPU's own peak on `cores` where that is higher than
    every kernel measured; `cpu_peak` keeps the estimate either way."""
    mhz, vendor = clock_and_vendor(cpuinfo)
    flags = this_cpu(cpuinfo).flags
    for arith, gops in peak_gops(flags, vendor, mhz, cores).items():
        if arith not in gemm:
            continue
        gemm[arith]["cpu_peak"] = gops
        if gops > gemm[arith]["gops"]:
            where = f"{cores} cores at {mhz:,.0f} MHz, from the vector units: an estimate"
            gemm[arith].update(gops=gops, kernel=f"the CPU's peak ({where})")


def measure(
    config,
    device: str,
    tokens: int,
    rows: int,
    batches: int,
    engines: dict,
    threads: int = 1,
    cls_only: bool = False,
) -> dict:
    """The ceiling of each arithmetic the engines use, and each engine's useful rate (real tokens
    only, padding excluded) with its share of its own arithmetic's ceiling. `cls_only`: the
    exported graph's last layer runs for [CLS] only, so the ONNX engines do less arithmetic per
    token than PyTorch's; each engine is counted for what it computes, and each ceiling's rows/s
    is that of the exported graph."""
    mean = tokens / rows
    per_token = ops_per_token(config, mean)
    exported = ops_per_token(config, mean, cls_only)
    batch_tokens = max(1, tokens // batches)  # the scorer's batches' mean, as the engines multiply
    needed = sorted({r["arith"] for r in engines.values() if r.get("arith")})
    shape = (batch_tokens, config.hidden_size, config.intermediate_size)
    gemm = {a: gemm_rate(device, a, *shape, threads) for a in needed}
    useful = {}
    for name, r in engines.items():
        ops = per_token if r.get("group") == "pytorch" else exported
        useful[name] = {"gops": r["tokens_per_s"] * ops / 1e9, "arith": r.get("arith")}
        useful[name]["op_per_token"] = round(ops)
    for arith, g in gemm.items():  # an engine beating every bare kernel sets the ceiling itself
        own = {n: u["gops"] for n, u in useful.items() if u["arith"] == arith}
        if own and max(own.values()) > g["gops"]:
            g["kernel"] = max(own, key=own.get) + " (the whole model, faster than any bare pair)"
            g["gops"] = round(max(own.values()), 1)
    if device == "cpu":
        raise_to_peak(gemm, min(threads, usable_cores()))
    for g in gemm.values():
        g["rows_per_s"] = g["gops"] * 1e9 / (exported * mean)
    for u in useful.values():
        u["share"] = u["gops"] / gemm[u["arith"]]["gops"] if u["arith"] in gemm else None
    ops = {"op_per_token": round(per_token), "op_per_token_exported": round(exported)}
    return {**ops, "gemm": gemm, "useful": useful}
