"""The rule behind `--variant auto`: which exported variant runs, from the device and CPU flags.

A pure function of the facts passed in (provider, CPU flags, what export.json lists), so it is
tested with the flags of every kind of CPU. Change the tables here after measuring.
"""

from __future__ import annotations

from common.cpu import BF16_FLAGS, VNNI_FLAGS, int8_dot_flag

# On the CPU, each row whose flags the CPU has (any one of them) names a variant to try, in this
# order. Measured on Zen 4 (`python -m score` on 4,000 real comments, 2 threads; the benchmark's
# figures are in benchmarks/results/amd-epyc-avx512-vnni-bf16): int8-static 552 rows/s, bf16
# 460, onnxruntime int8 265, optimized 231. int8-static is left to CPUs with VNNI or AMX: without
# them its int8 products can saturate (u8 x s8 in 16-bit pairs); on Zen 4 with OpenVINO held to
# AVX2 (ONEDNN_MAX_CPU_ISA) it ran slower than fp32 (149 against 197 rows/s, model only) and
# strayed further (cpu_kind_problem).
CPU_RULE = [
    (("amx_int8",), "int8-static", "AMX multiplies int8 matrices in tiles"),
    (VNNI_FLAGS, "int8-static", "VNNI does int8 dot products in one instruction"),
    (BF16_FLAGS, "bf16", "OpenVINO runs its bf16 matrix multiplies in hardware"),
    (("amx_int8",), "int8", "AMX multiplies int8 matrices in tiles"),
    (VNNI_FLAGS, "int8", "VNNI does int8 dot products in one instruction"),
]
CPU_OTHERWISE = "no bf16 hardware, VNNI or AMX, so neither bf16 nor int8 gains much"
# Where no preferred variant is usable, in this order.
FALLBACK = {"cpu": ["optimized", "fp32"], "cuda": ["fp16", "optimized", "fp32"]}


def auto_variant(
    provider: str, flags: frozenset[str], present: set[str], records: dict[str, dict]
) -> tuple[str, str]:
    """The variant to run and why; `present` are the ONNX files, `records` export.json's entries."""
    if provider == "cuda":
        pick = next(v for v in FALLBACK["cuda"] if v in present)
        missing = FALLBACK["cuda"][: FALLBACK["cuda"].index(pick)]
        return pick, "on CUDA" + "".join(f"; {v} not exported" for v in missing)
    passed_over = []
    for variant, why in cpu_preferences(flags):
        problem = (
            PROBLEMS[variant](records.get(variant), flags) if variant in present else "not exported"
        )
        if problem is None:
            picked = f"{why}, and {variant} is within its fidelity limits"
            return variant, "; ".join([*passed_over, picked])
        passed_over.append(f"{why}, but {variant} is not usable: {problem}")
    why = "; ".join(passed_over) or f"this CPU has {CPU_OTHERWISE}"
    pick = next(v for v in FALLBACK["cpu"] if v in present)
    missing = FALLBACK["cpu"][: FALLBACK["cpu"].index(pick)]
    return pick, why + "".join(f"; {v} not exported" for v in missing)


def cpu_preferences(flags: frozenset[str]) -> list[tuple[str, str]]:
    """The variants this kind of CPU runs faster than optimized fp32 (by the table above), fastest
    first, each with the reason."""
    preferences: dict[str, str] = {}
    for wanted, variant, why in CPU_RULE:
        have = [f for f in wanted if f in flags]
        if have and variant not in preferences:
            preferences[variant] = f"this CPU has {have[0]}: {why}"
    return list(preferences.items())


def fidelity_problem(variant: str, record: dict | None) -> str | None:
    """None when export.json says `variant` passed its fidelity limits, else what is wrong."""
    if not record:
        return "export.json has no entry for it; re-export"
    fidelity = record.get("fidelity") or {}
    if fidelity.get("passed") is None:
        return (
            f"export.json records no {variant} fidelity check (exported before it had one); "
            "re-export"
        )
    if not fidelity["passed"]:
        return "export.json says it is past its fidelity limits"
    return None


def bf16_problem(record: dict | None) -> str | None:
    """bf16 rounds every product's inputs to 8 significant bits, the same for every text, so
    unlike int8 (whose per-batch scales follow outliers) the texts export checked suffice."""
    return fidelity_problem("bf16", record)


def int8_problem(record: dict | None, variant: str = "int8") -> str | None:
    """None when export.json says int8 passed its fidelity limits on enough real rows, else
    what is wrong. On the 8 parity texts alone int8 can pass and still stray on real comments
    (max gap 0.116 on 2,000 real ones for a model that passed them), so auto asks for as many
    --eval-data rows as export needed to bind its flag limit (`rows_to_bind`)."""
    problem = fidelity_problem(variant, record)
    if problem is not None:
        return problem
    fidelity = record["fidelity"]
    rows, needed = fidelity.get("sample_rows", 0), fidelity.get("rows_to_bind")
    if needed is None:
        return "export.json records no --eval-data row count for it (an older export); re-export"
    if rows < needed:
        return (
            f"it was checked on {rows} --eval-data rows, fewer than {needed}; re-export "
            f"with --eval-data (a labelled sample of your comments) or pass --variant {variant}"
        )
    return None


def int8_static_problem(record: dict | None, flags: frozenset[str]) -> str | None:
    """int8_problem's checks, then the kind of CPU (`cpu_kind_problem`)."""
    return int8_problem(record, "int8-static") or cpu_kind_problem(record, flags)


def cpu_kind_problem(record: dict | None, flags: frozenset[str]) -> str | None:
    """A file checked where int8 dot products do not saturate (VNNI, AMX) strays further on a CPU
    without them, so it is held to that kind; None when this CPU is of the kind checked."""
    if (record or {}).get("int8_dot_products") and not int8_dot_flag(flags):
        return (
            "export checked it on a CPU with VNNI or AMX and this one has neither, so its int8 "
            "products saturate and it strays further than checked; re-export on this kind of CPU"
        )
    return None


PROBLEMS = {
    "bf16": lambda record, flags: bf16_problem(record),
    "int8": lambda record, flags: int8_problem(record),
    "int8-static": int8_static_problem,
}
