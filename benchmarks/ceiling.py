"""How fast this device does the model's arithmetic at all, to read the engines' rates against.

A bare matrix multiply with the shapes of the model's feed-forward layers (in the engines'
precision) is about the best any engine can do per FLOP on this device: an engine whose useful
FLOP rate is near it cannot be made much faster without doing less or cheaper arithmetic.
"""

from __future__ import annotations

import time


def flops_per_token(config, mean_tokens: float) -> float:
    """Multiply-adds x 2 of one token through the encoder: the linear layers, plus attention's
    two products over a sequence of `mean_tokens` (embeddings and the small head left out)."""
    hidden, inner = config.hidden_size, config.intermediate_size
    linear = 2 * (4 * hidden * hidden + 2 * hidden * inner)
    attention = 2 * 2 * mean_tokens * hidden
    return config.num_hidden_layers * (linear + attention)


def gemm_gflops(device: str, rows: int, hidden: int, inner: int, seconds: float = 2.0) -> dict:
    """GFLOP/s of (rows x hidden) @ (hidden x inner) then back, fp32 on the CPU, fp16 on CUDA."""
    import torch

    dtype = torch.float16 if device == "cuda" else torch.float32
    x = torch.randn(rows, hidden, device=device, dtype=dtype)
    up = torch.randn(hidden, inner, device=device, dtype=dtype)
    down = torch.randn(inner, hidden, device=device, dtype=dtype)
    flops = 2 * 2 * rows * hidden * inner
    with torch.inference_mode():
        for _ in range(3):
            (x @ up) @ down  # warm-up: thread pools, kernel selection
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            (x @ up) @ down
            count += 1
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    return {
        "gflops": round(flops * count / elapsed / 1e9, 1),
        "shape": f"({rows}x{hidden}) @ ({hidden}x{inner}) @ ({inner}x{hidden})",
        "dtype": str(dtype).removeprefix("torch."),
    }


def measure(config, device: str, tokens: int, rows: int, batch_size: int, engines: dict) -> dict:
    """The GEMM ceiling and each engine's useful GFLOP/s (real tokens only, padding excluded)."""
    mean = tokens / rows
    per_token = flops_per_token(config, mean)
    batch_tokens = int(batch_size * mean)  # one bucketed batch, as the engines multiply it
    gemm = gemm_gflops(device, batch_tokens, config.hidden_size, config.intermediate_size)
    useful = {n: round(r["tokens_per_s"] * per_token / 1e9, 1) for n, r in engines.items()}
    return {"flop_per_token": round(per_token), "gemm": gemm, "useful_gflops": useful}
