"""How fast this device does the model's arithmetic at all, to read the engines' rates against:
a bare matrix multiply of the model's feed-forward shapes, in each arithmetic the engines use, is
about the best any engine can do per operation here; an engine near it cannot get much faster
without doing less or cheaper arithmetic."""

from __future__ import annotations

import time

import torch

from benchmarks.timing import synchronizer
from benchmarks.torch_engines import quantize_linear_int8


def ops_per_token(config, mean_tokens: float) -> float:
    """Multiply-adds x 2 of one token through the encoder: the linear layers, plus attention's
    two products over a sequence of `mean_tokens` (embeddings and the small head left out)."""
    hidden, inner = config.hidden_size, config.intermediate_size
    linear = 2 * (4 * hidden * hidden + 2 * hidden * inner)
    attention = 2 * 2 * mean_tokens * hidden
    return config.num_hidden_layers * (linear + attention)


def _kernel(device: str, arith: str, rows: int, hidden: int, inner: int):
    """(rows x hidden) @ (hidden x inner) @ (inner x hidden) in `arith`, and what runs it."""
    if arith == "int8":
        # torch._int_mm has no VNNI path on the CPU (~1/3 of this rate on Zen 4); the dynamic
        # int8 Linear (fbgemm/oneDNN u8 x s8) is what int8 engines run, activation quantizing
        # included.
        pair = torch.nn.Sequential(torch.nn.Linear(hidden, inner), torch.nn.Linear(inner, hidden))
        quantized, x = quantize_linear_int8(pair.eval()), torch.randn(rows, hidden)
        return (lambda: quantized(x)), "dynamic int8 nn.Linear pair (quantize_dynamic)"
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[arith]
    x = torch.randn(rows, hidden, device=device, dtype=dtype)
    up = torch.randn(hidden, inner, device=device, dtype=dtype)
    down = torch.randn(inner, hidden, device=device, dtype=dtype)
    return (lambda: (x @ up) @ down), f"torch.matmul {arith}"


def gemm_rate(device: str, arith: str, rows: int, hidden: int, inner: int) -> dict:
    """G(FL)OP/s of the feed-forward pair of matrix multiplies in one arithmetic, over 1.5 s."""
    step, kernel = _kernel(device, arith, rows, hidden, inner)
    sync = synchronizer(device)
    with torch.inference_mode():
        for _ in range(3):
            step()  # warm-up: thread pools, kernel selection, weight packing
        sync()
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < 1.5:
            step()
            count += 1
        sync()
        elapsed = time.perf_counter() - start
    gops = round(2 * 2 * rows * hidden * inner * count / elapsed / 1e9, 1)
    shape = f"({rows}x{hidden}) @ ({hidden}x{inner}) @ ({inner}x{hidden})"
    return {"gops": gops, "shape": shape, "kernel": kernel}


def measure(config, device: str, tokens: int, rows: int, batch_size: int, engines: dict) -> dict:
    """The GEMM ceiling of each arithmetic the engines use, and each engine's useful rate
    (real tokens only, padding excluded) with its share of its own arithmetic's ceiling."""
    mean = tokens / rows
    per_token = ops_per_token(config, mean)
    batch_tokens = max(1, int(batch_size * mean))  # one bucketed batch, as the engines multiply
    needed = sorted({r["arith"] for r in engines.values() if r.get("arith")})
    shape = (batch_tokens, config.hidden_size, config.intermediate_size)
    gemm = {a: gemm_rate(device, a, *shape) for a in needed}
    for g in gemm.values():  # the rate a bare GEMM would give on these texts' real tokens
        g["rows_per_s"] = g["gops"] * 1e9 / (per_token * mean)
    useful = {}
    for name, r in engines.items():
        rate, arith = r["tokens_per_s"] * per_token / 1e9, r.get("arith")
        ceiling = gemm.get(arith, {}).get("gops")
        useful[name] = {"gops": rate, "arith": arith, "share": rate / ceiling if ceiling else None}
    return {"op_per_token": round(per_token), "gemm": gemm, "useful": useful}
