"""The speed and quality targets checked against one run: goal, measured ratio, met or not, and
for a miss the figures that say why (rates, and how far each engine is from its GEMM ceiling)."""

from __future__ import annotations

from common.variants import VARIANTS

SEED = "pytorch-fp32-padded"
E2E = "scorer-end-to-end"
AUC_TOLERANCE = 0.002  # the bound on the macro ROC-AUC change of any default variant
UNIT = {"int8": "GOP/s"}  # integer operations; every other arithmetic counts GFLOP/s


def engine_name(variant: str) -> str:
    """The throughput table's name of a variant run through the scorer, e.g. `openvino-bf16`."""
    return f"{VARIANTS[variant].runtime}-{variant}"


def ranked(speed: dict) -> dict:
    """The engines that may be compared: finite probabilities only (a NaN engine is not fast)."""
    return {n: r for n, r in speed.items() if not r.get("failed")}


def best_pytorch(speed: dict, faithful: bool = True) -> str | None:
    """The fastest PyTorch engine; `faithful`: of those within the variants' fidelity limits."""
    torch = {
        n: r
        for n, r in ranked(speed).items()
        if r["group"] == "pytorch" and not (faithful and r.get("limits_broken"))
    }
    return max(torch, key=lambda n: torch[n]["rows_per_s"]) if torch else None


def check(record: dict) -> list[dict]:
    """One row per target of this device; a missed one carries `why`."""
    speed = record.get("throughput", {}).get("engines", {})
    if not speed:
        return []
    best, fastest = best_pytorch(speed), best_pytorch(speed, faithful=False)
    if record["settings"]["device"] == "cpu":
        rows = [
            _ratio(speed, E2E, best, 1.5, "scorer end to end vs the fastest faithful PyTorch"),
            _ratio(
                speed, E2E, fastest, 1.0, "scorer end to end vs the fastest PyTorch, any fidelity"
            ),
            _ratio(speed, E2E, SEED, 5.0, "scorer end to end vs the seed's loop"),
            _ratio(speed, E2E, _alone(speed), 0.95, "scorer end to end vs its variant alone"),
            _auc(record),
        ]
    else:
        rows = [
            _ratio(speed, E2E, SEED, 10.0, "scorer end to end vs the seed's loop"),
            _ratio(
                speed, "onnxruntime-fp16", best, 1.3, "ORT fp16 vs the fastest faithful PyTorch"
            ),
            _absolute(speed, E2E, 20_000, "scorer end to end, rows/s (bert-base-sized model)"),
        ]
        if (record["model"].get("hidden_size"), record["model"].get("layers")) != (768, 12):
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
    if broken := speed[fast].get("limits_broken"):  # fast, but not the model's answers
        return {**row, "measured": f"breaks {'; '.join(broken)}", "value": None, "met": False}
    value = speed[fast]["rows_per_s"] / speed[slow]["rows_per_s"]
    return {**row, "measured": f"{value:.2f}x ({slow})", "value": value, "met": value >= goal}


def _alone(speed: dict) -> str | None:
    """The engine that runs the end-to-end run's variant on texts in memory."""
    variant = speed.get(E2E, {}).get("variant")
    return engine_name(variant) if variant in VARIANTS else None


def _absolute(speed: dict, name: str, goal: float, what: str) -> dict:
    row = {"target": what, "goal": f">= {goal:,.0f}", "threshold": goal, "engine": name}
    if name not in ranked(speed):
        return {**row, "measured": "not measured", "value": None, "met": None}
    value = speed[name]["rows_per_s"]
    return {**row, "measured": f"{value:,.0f} rows/s", "value": value, "met": value >= goal}


def _auc(record: dict) -> dict:
    """The scorer's default variant must score as PyTorch does on the labelled rows."""
    variant = record["throughput"]["engines"].get(E2E, {}).get("variant")
    name = engine_name(variant)
    what = f"macro ROC-AUC change of the default variant ({variant}) vs PyTorch fp32"
    row = {"target": what, "goal": f"within {AUC_TOLERANCE} either way", "threshold": AUC_TOLERANCE}
    row["engine"] = name
    change = record.get("quality", {}).get("engines", {}).get(name, {}).get("roc_auc_change")
    if change is None:
        return {**row, "measured": "not measured", "value": None, "met": None}
    met = abs(change) <= AUC_TOLERANCE
    return {**row, "measured": f"{change:+.4f}", "value": change, "met": met}


def why_missed(record: dict, row: dict) -> str:
    """The measurements behind a miss: the rates needed and had, how close each engine is to the
    GEMM ceiling of its arithmetic, and what each arithmetic's ceiling allows for this model."""
    speed = record["throughput"]["engines"]
    name, against = row["engine"], row.get("against")
    if speed.get(name, {}).get("failed"):
        return f"{name} gave {speed[name]['failed']}"
    if speed.get(name, {}).get("limits_broken"):
        return f"{name} is outside the variants' fidelity limits against PyTorch fp32"
    if row["target"].startswith("macro ROC-AUC"):
        diff = record["quality"]["engines"][name]["max_abs_diff"]
        return f"{name}'s probabilities differ from PyTorch fp32's by up to {diff:.3f}"
    # The Scorer.predict engine of the variant an end-to-end run used (model only, no I/O).
    same = engine_name(speed[name]["variant"]) if speed[name].get("variant") else None
    model = same if name.startswith(E2E) and same in speed else name
    have = f"runs {speed[name]['rows_per_s']:,.0f} rows/s"
    if model != name:
        have += f" ({speed[model]['rows_per_s']:,.0f} for the model alone, {model})"
    need = row["threshold"] * speed[against]["rows_per_s"] if against else row["threshold"]
    parts = [f"needs {need:,.0f} rows/s, {have}"]
    parts += [_at_ceiling(record, n) for n in (model, against) if n]
    parts.append(_ceilings(record, need))
    return "; ".join(p for p in parts if p)


def _at_ceiling(record: dict, name: str) -> str:
    """`onnxruntime-int8 is at 33% of the int8 GEMM ceiling (466.6 GOP/s)`."""
    ceiling = record["throughput"].get("ceiling") or {}
    useful = ceiling.get("useful", {}).get(name)
    if not useful or useful["share"] is None:
        return ""
    arith = useful["arith"]
    text = (
        f"{name} is at {100 * useful['share']:.0f}% of the {arith} GEMM ceiling "
        f"({ceiling['gemm'][arith]['gops']:,.1f} {UNIT.get(arith, 'GFLOP/s')})"
    )
    return text


def _ceilings(record: dict, need: float) -> str:
    """What each arithmetic's ceiling allows for this model at its measured rate (a bound on
    these kernels here, not on the arithmetic: a faster kernel would move it)."""
    gemm = (record["throughput"].get("ceiling") or {}).get("gemm", {})
    if not gemm:
        return ""
    allowed = ", ".join(f"{a} {g['rows_per_s']:,.0f}" for a, g in gemm.items())
    return f"the fastest measured kernels of each arithmetic would allow (rows/s): {allowed}"


def notes(record: dict) -> list[str]:
    """Facts a reader needs next to the tables: competing load, failed engines."""
    lines = [
        f"{name} failed ({r['failed']}): not ranked."
        for name, r in record.get("throughput", {}).get("engines", {}).items()
        if r.get("failed")
    ]
    env = record.get("env", {})
    if busy := competing_load(env):
        lines.append(
            f"Other work kept about {busy:.1f} of {env.get('cores')} cores busy: CPU figures are "
            "lower than an idle machine gives, and the ratios noisier."
        )
    return lines


def competing_load(env: dict) -> float | None:
    """The cores other work kept busy during a CPU run, when enough to skew its figures."""
    busy = max(env.get(k, {}).get("cores_busy", 0) for k in ("busy_before", "busy_after"))
    return busy if env.get("device") == "cpu" and busy >= 0.3 else None
