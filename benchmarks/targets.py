"""The issue's targets, checked against one run's figures, and a plain reading of the figures."""

from __future__ import annotations

SEED = "pytorch-fp32-padded"
TORCH = "pytorch-fp32-bucketed"
E2E = "scorer-end-to-end"
AUC_TOLERANCE = 0.005
FP16_TARGET = "onnxruntime fp16 vs PyTorch fp16 autocast, same batches"
CEILING_ROWS_PER_S = 35_000  # ~22 GFLOP per 128-token bert-base sequence at 790 TFLOP/s


def check(record: dict) -> list[dict]:
    """One row per target: what was asked, what was measured, met or not, and by how much."""
    speed = record.get("throughput", {}).get("engines", {})
    if not speed:
        return []
    if record["settings"]["device"] == "cpu":
        best = best_onnxruntime(speed)
        rows = [
            _ratio(
                speed, best, TORCH, 3.0, "best onnxruntime variant vs PyTorch fp32, same batching"
            ),
            _auc(record, best),
            _ratio(speed, E2E, SEED, 5.0, "scorer end to end vs the seed-style PyTorch loop"),
        ]
    else:
        rows = [
            _absolute(speed, E2E, 20_000, "scorer end to end, rows/s (bert-base-sized model)"),
            _ratio(speed, "onnxruntime-fp16", "pytorch-fp16-bucketed", 1.3, FP16_TARGET),
            _ratio(speed, E2E, SEED, 10.0, "scorer end to end vs the seed-style PyTorch fp32 loop"),
        ]
        if not _is_bert_base(record["model"]):
            for row in rows:
                row["caveat"] = "the GPU targets are set for a bert-base-sized model"
    return rows


def best_onnxruntime(speed: dict) -> str | None:
    ort = [n for n, r in speed.items() if r["group"] == "onnxruntime"]
    return max(ort, key=lambda n: speed[n]["rows_per_s"]) if ort else None


def _ratio(speed: dict, fast: str | None, slow: str, goal: float, what: str) -> dict:
    row = {"target": what, "goal": f">= {goal:g}x", "threshold": goal, "engine": fast}
    if fast not in speed or slow not in speed:
        return {**row, "measured": "not measured", "value": None, "met": None}
    value = speed[fast]["rows_per_s"] / speed[slow]["rows_per_s"]
    return {**row, "measured": f"{value:.2f}x ({fast})", "value": value, **_gap(value, goal, "x")}


def _absolute(speed: dict, name: str, goal: float, what: str) -> dict:
    row = {"target": what, "goal": f">= {goal:,.0f}", "threshold": goal, "engine": name}
    if name not in speed:
        return {**row, "measured": "not measured", "value": None, "met": None}
    value = speed[name]["rows_per_s"]
    return {
        **row,
        "measured": f"{value:,.0f} rows/s",
        "value": value,
        **_gap(value, goal, " rows/s"),
    }


def _auc(record: dict, best: str | None) -> dict:
    row = {
        "target": f"macro ROC-AUC of {best or 'the best variant'} within {AUC_TOLERANCE} "
        "of PyTorch's",
        "goal": f"|change| <= {AUC_TOLERANCE}",
        "threshold": AUC_TOLERANCE,
        "engine": best,
    }
    change = record.get("quality", {}).get("engines", {}).get(best, {}).get("roc_auc_change")
    if change is None:
        return {**row, "measured": "not measured", "value": None, "met": None}
    met = abs(change) <= AUC_TOLERANCE
    gap = "" if met else f"off by {abs(change) - AUC_TOLERANCE:.4f} beyond the tolerance"
    return {**row, "measured": f"{change:+.4f}", "value": change, "met": met, "gap": gap}


def _gap(value: float, goal: float, unit: str) -> dict:
    if value >= goal:
        return {"met": True, "gap": f"{value / goal:.2f} times the goal"}
    below = 100 * (1 - value / goal)
    short = f"{goal - value:,.0f}" if unit == " rows/s" else f"{goal - value:,.2f}"
    return {"met": False, "gap": f"{below:.0f}% below the goal (short by {short}{unit})"}


def _is_bert_base(model: dict) -> bool:
    return model.get("hidden_size") == 768 and model.get("layers") == 12


def reading(record: dict) -> list[str]:
    """Sentences drawn from the figures: what the ratios are and what limits them."""
    speed = record.get("throughput", {}).get("engines", {})
    lines = [_load_line(record), _quality_line(record)]
    if not speed:
        return [line for line in lines if line]
    profile = record["throughput"]["profile"]
    rate = {n: r["rows_per_s"] for n, r in speed.items()}
    lines.append(
        f"Padding every comment to {record['settings']['max_length']} tokens makes the seed "
        f"loop compute {profile['pad_factor_padded']:.1f}x as many token positions as there "
        f"are real tokens; length bucketing brings that to {profile['pad_factor_bucketed']:.2f}x, "
        f"which with batched tokenization takes PyTorch fp32 to "
        f"{rate[TORCH] / rate[SEED]:.2f}x the seed loop's rate."
    )
    for name in [n for n, r in speed.items() if r["group"] == "onnxruntime"]:
        lines.append(
            f"{name} runs {rate[name] / rate[TORCH]:.2f}x PyTorch fp32 with the same bucketing "
            f"(largest probability difference {speed[name]['max_abs_diff']:.1e})."
        )
    int8 = record["export"]["variants"].get("int8", {})
    vnni = {"avx512_vnni", "avx_vnni"} & set(record["env"].get("cpu_flags", []))
    if "onnxruntime-int8" in rate and not vnni:
        lines.append(
            f"int8 was quantized for {int8.get('isa', '?')} (reduce_range "
            f"{int8.get('reduce_range')}): this CPU has no VNNI instructions, so int8 matmuls "
            "cannot use the fast dot-product path and gain less than they could."
        )
    if record["settings"]["device"] == "cuda":
        lines += _gpu_lines(record, rate)
    best = best_onnxruntime(speed)
    if best and E2E in rate:
        lines.append(_e2e_line(speed, best))
    if f"{E2E}-int8" in rate:
        lines.append(
            f"Asked for int8 (--variant int8), the scorer end to end reaches "
            f"{rate[f'{E2E}-int8']:,.0f} rows/s, {rate[f'{E2E}-int8'] / rate[SEED]:.2f}x the "
            "seed loop; its default variant (see above) is what the target is checked with."
        )
    lines.append(
        f"Tokenizing alone (fast tokenizer, one batch call) runs at "
        f"{profile['tokenize_batch_rows_per_s']:,.0f} rows/s, "
        f"{profile['tokenize_batch_rows_per_s'] / max(rate.values()):.0f}x the fastest engine: "
        "the model, not the tokenizer, sets the pace."
        if profile["tokenize_batch_rows_per_s"] > 3 * max(rate.values())
        else f"Tokenizing alone runs at {profile['tokenize_batch_rows_per_s']:,.0f} rows/s, close "
        "to the fastest engine: tokenization limits the end-to-end rate."
    )
    lines.append(_ceiling_line(record))
    for row in check(record):
        if row["met"] is False:
            lines.append(f"Missed: {row['target']}: {row['measured']}, {row['gap']}.")
    return [line for line in lines if line]


def _e2e_line(speed: dict, best: str) -> str:
    e2e = speed[E2E]
    variant = e2e.get("variant", "?")
    same = speed.get(f"onnxruntime-{variant}")
    text = f"The scorer end to end (variant {variant}) reaches {e2e['rows_per_s']:,.0f} rows/s"
    if same:
        gap = e2e["median_s"] - same["median_s"]
        text += (
            f" against {same['rows_per_s']:,.0f} rows/s for Scorer.predict with the same variant"
        )
        text += (
            f" ({gap:.2f} s more per run for reading the CSV and writing Parquet)"
            if gap >= 0
            else " (faster: its thread pipeline tokenizes while the model runs; with "
            f"{max(e2e['spread_pct'], same['spread_pct']):.0f}% spread between repeats, part "
            "of the difference may be noise)"
        )
    load = e2e.get("load_s") or []
    if load:
        text += (
            f"; opening the session costs another {min(load):.2f} s per run, left out of its "
            "time as the other engines' model loading is"
        )
    if variant != best.removeprefix("onnxruntime-"):
        text += f"; its default variant is not the fastest here ({best})"
    return text + "."


def _gpu_lines(record: dict, rate: dict) -> list[str]:
    lines = []
    if "onnxruntime-fp16" in rate and "pytorch-fp16-bucketed" in rate:
        ratio = rate["onnxruntime-fp16"] / rate["pytorch-fp16-bucketed"]
        lines.append(
            f"onnxruntime fp16 runs {ratio:.2f}x PyTorch's fp16 autocast on the same batches "
            "(padded to multiples of 8)."
        )
    if E2E in rate and _is_bert_base(record["model"]):
        lines.append(
            f"The scorer end to end reaches {100 * rate[E2E] / CEILING_ROWS_PER_S:.0f}% of the "
            f"~{CEILING_ROWS_PER_S:,} sequences/s that 790 TFLOP/s would give if every sequence "
            "were padded to 128 (bucketing computes fewer positions, so it could exceed that)."
        )
    return lines


def _quality_line(record: dict) -> str:
    scored = record.get("quality", {}).get("engines", {})
    if TORCH not in scored or scored[TORCH]["roc_auc_macro"] is None:
        return ""
    changes = ", ".join(
        f"{name} {row['roc_auc_change']:+.4f}"
        for name, row in scored.items()
        if name != TORCH and row["roc_auc_change"] is not None
    )
    return (
        f"Macro ROC-AUC of PyTorch fp32 on {record['quality']['rows']:,} labelled rows: "
        f"{scored[TORCH]['roc_auc_macro']:.4f}; change per engine: {changes}."
    )


def _load_line(record: dict) -> str:
    env = record.get("env", {})
    busy = [env.get("busy_before", {}), env.get("busy_after", {})]
    cores = max((b.get("cores_busy", 0) for b in busy), default=0)
    if env.get("device") != "cpu" or cores < 0.3:
        return ""
    return (
        f"Another process kept about {cores:.1f} of {env.get('cores')} cores busy "
        f"(before: {busy[0].get('cores_busy')}, after: {busy[1].get('cores_busy')}): the CPU "
        "figures are lower than an idle machine gives, and the ratios noisier."
    )


def _ceiling_line(record: dict) -> str | None:
    """How close the fp32 engines are to the device's matrix-multiply rate, and what that means."""
    c = record["throughput"].get("ceiling")
    useful = (c or {}).get("useful_gflops", {})
    if TORCH not in useful:
        return None
    gemm = c["gemm"]["gflops"]
    share = useful[TORCH] / gemm
    return (
        f"PyTorch fp32 with length bucketing already does {useful[TORCH]:,.1f} useful GFLOP/s, "
        f"{100 * share:.0f}% of the {gemm:,.1f} GFLOP/s a bare {c['gemm']['dtype']} matrix "
        f"multiply of the model's shape reaches here, so no runtime can run the same "
        f"arithmetic more than {1 / share:.1f}x faster on this device; beyond that only less "
        "arithmetic (a shorter max length, a smaller model) or cheaper arithmetic (int8 on a "
        "CPU with VNNI or AMX, fp16 on a GPU) helps."
    )
