"""The issue's targets checked against one run: goal, measured ratio, met or not, and for a miss
the figures that say why (rates, and how far each engine is from its arithmetic's GEMM ceiling).
"""

from __future__ import annotations

SEED = "pytorch-fp32-padded"
REFERENCE = "pytorch-fp32-bucketed"
E2E = "scorer-end-to-end"
AUC_TOLERANCE = 0.002  # issue 12's bound on int8's macro ROC-AUC change, for any default variant
UNIT = {"int8": "GOP/s"}  # integer operations; every other arithmetic counts GFLOP/s


def ranked(speed: dict) -> dict:
    """The engines that may be compared: finite probabilities only (a NaN engine is not fast)."""
    return {n: r for n, r in speed.items() if not r.get("failed")}


def best_pytorch(speed: dict) -> str | None:
    torch = {n: r for n, r in ranked(speed).items() if r["group"] == "pytorch"}
    return max(torch, key=lambda n: torch[n]["rows_per_s"]) if torch else None


def check(record: dict) -> list[dict]:
    """One row per target of this device; a missed one carries `why`."""
    speed = record.get("throughput", {}).get("engines", {})
    if not speed:
        return []
    if record["settings"]["device"] == "cpu":
        rows = [
            _ratio(speed, E2E, best_pytorch(speed), 1.5, "scorer end to end vs the best PyTorch"),
            _ratio(speed, E2E, SEED, 5.0, "scorer end to end vs the seed's loop"),
            _auc(record),
        ]
    else:
        rows = [
            _ratio(speed, E2E, SEED, 10.0, "scorer end to end vs the seed's loop"),
            _ratio(speed, "onnxruntime-fp16", "pytorch-fp16-bucketed", 1.3, "ORT fp16 vs autocast"),
            _absolute(speed, E2E, 20_000, "scorer end to end, rows/s (bert-base-sized model)"),
        ]
        if not _is_bert_base(record["model"]):
            for row in rows:
                row["caveat"] = "the GPU targets are set for a bert-base-sized model"
    for row in rows:
        if row["met"] is False:
            row["why"] = why_missed(record, row)
    return rows


def _ratio(speed: dict, fast: str, slow: str | None, goal: float, what: str) -> dict:
    row = {"target": what, "goal": f">= {goal:g}x", "threshold": goal, "engine": fast}
    row["against"] = slow
    if fast not in speed or slow not in ranked(speed):
        return {**row, "measured": "not measured", "value": None, "met": None}
    if speed[fast].get("failed"):
        return {**row, "measured": f"failed: {speed[fast]['failed']}", "value": None, "met": False}
    value = speed[fast]["rows_per_s"] / speed[slow]["rows_per_s"]
    return {**row, "measured": f"{value:.2f}x ({slow})", "value": value, "met": value >= goal}


def _absolute(speed: dict, name: str, goal: float, what: str) -> dict:
    row = {"target": what, "goal": f">= {goal:,.0f}", "threshold": goal, "engine": name}
    if name not in ranked(speed):
        return {**row, "measured": "not measured", "value": None, "met": None}
    value = speed[name]["rows_per_s"]
    return {**row, "measured": f"{value:,.0f} rows/s", "value": value, "met": value >= goal}


def _auc(record: dict) -> dict:
    """The scorer's default variant must score as PyTorch does on the labelled rows."""
    variant = record["throughput"]["engines"].get(E2E, {}).get("variant")
    name = f"onnxruntime-{variant}"
    row = {
        "target": f"macro ROC-AUC change of the default variant ({variant}) vs PyTorch fp32",
        "goal": f"within {AUC_TOLERANCE} either way",
        "threshold": AUC_TOLERANCE,
        "engine": name,
    }
    change = record.get("quality", {}).get("engines", {}).get(name, {}).get("roc_auc_change")
    if change is None:
        return {**row, "measured": "not measured", "value": None, "met": None}
    return {
        **row,
        "measured": f"{change:+.4f}",
        "value": change,
        "met": abs(change) <= AUC_TOLERANCE,
    }


def why_missed(record: dict, row: dict) -> str:
    """The measurements behind a miss: rates needed and had, and each engine's distance to the
    ceiling of its arithmetic (at 100% of it, how fast it could go at most)."""
    speed = record["throughput"]["engines"]
    name = row["engine"]
    if speed.get(name, {}).get("failed"):
        return f"{name} gave {speed[name]['failed']}"
    if row["target"].startswith("macro ROC-AUC"):
        diff = record["quality"]["engines"][name]["max_abs_diff"]
        return f"{name}'s probabilities differ from PyTorch fp32's by up to {diff:.3f}"
    if row.get("against") is None:  # an absolute rate: only the ceiling speaks
        return arithmetic(record, _model_engine(speed, name))
    need = row["threshold"] * speed[row["against"]]["rows_per_s"]
    parts = [f"needs {need:,.0f} rows/s, runs {speed[name]['rows_per_s']:,.0f}"]
    model = _model_engine(speed, name)
    if model != name:
        parts.append(f"the model alone ({model}) runs {speed[model]['rows_per_s']:,.0f} rows/s")
    parts += [arithmetic(record, model, need), arithmetic(record, row["against"])]
    return "; ".join(p for p in parts if p)


def arithmetic(record: dict, name: str, need: float | None = None) -> str:
    """`name: 62 GFLOP/s useful, 40% of the fp32 GEMM ceiling 155 (at most 300 rows/s)`."""
    ceiling = record["throughput"].get("ceiling") or {}
    useful = ceiling.get("useful", {}).get(name)
    if not useful or not useful["share"]:
        return ""
    arith = useful["arith"]
    gemm = ceiling["gemm"][arith]["gops"]
    bound = record["throughput"]["engines"][name]["rows_per_s"] / useful["share"]
    text = (
        f"{name} does {useful['gops']:,.1f} useful {UNIT.get(arith, 'GFLOP/s')}, "
        f"{100 * useful['share']:.0f}% of the {arith} GEMM ceiling {gemm:,.1f} "
        f"(at most {bound:,.0f} rows/s"
    )
    if need is not None and bound < need:
        text += f", short of {need:,.0f} even at the ceiling: {arith} arithmetic cannot get there"
    return text + ")"


def _model_engine(speed: dict, name: str) -> str:
    """The Scorer.predict engine of the variant an end-to-end run used (model only, no I/O)."""
    same = f"onnxruntime-{speed[name].get('variant')}"
    return same if name.startswith(E2E) and same in speed else name


def _is_bert_base(model: dict) -> bool:
    return model.get("hidden_size") == 768 and model.get("layers") == 12


def notes(record: dict) -> list[str]:
    """Facts a reader needs next to the tables: competing load, failed engines."""
    lines = [
        f"{name} failed ({r['failed']}): not ranked."
        for name, r in record.get("throughput", {}).get("engines", {}).items()
        if r.get("failed")
    ]
    env = record.get("env", {})
    busy = max(env.get(k, {}).get("cores_busy", 0) for k in ("busy_before", "busy_after"))
    if env.get("device") == "cpu" and busy >= 0.3:
        lines.append(
            f"Other work kept about {busy:.1f} of {env.get('cores')} cores busy: CPU figures are "
            "lower than an idle machine gives, and the ratios noisier."
        )
    return lines
