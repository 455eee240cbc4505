"""The rule behind `--variant auto`: which exported variant runs, from the device and CPU flags.

A pure function of the facts passed in (provider, CPU flags, what export.json lists), so it is
tested with the flags of every kind of CPU. Change the tables here after measuring.
"""

from __future__ import annotations

# On the CPU, the first row whose flags the CPU has (any one of them) names the preferred variant.
# Provisional until the benchmarks decide (issue 13): VNNI and AMX do int8 dot products in one
# instruction, so int8 is fast there; without them int8 gains little over optimized fp32.
CPU_RULE = [
    (("amx_int8",), "int8", "AMX multiplies int8 matrices in tiles"),
    (("avx512_vnni", "avx_vnni"), "int8", "VNNI does int8 dot products in one instruction"),
]
CPU_OTHERWISE = "no VNNI or AMX, so int8 gains little"
# Where the preferred variant is missing or not within its fidelity limit, in this order.
FALLBACK = {"cpu": ["optimized", "fp32"], "cuda": ["fp16", "optimized", "fp32"]}


def auto_variant(
    provider: str, flags: frozenset[str], present: set[str], records: dict[str, dict]
) -> tuple[str, str]:
    """The variant to run and why; `present` are the ONNX files, `records` export.json's entries."""
    if provider == "cuda":
        pick = next(v for v in FALLBACK["cuda"] if v in present)
        missing = FALLBACK["cuda"][: FALLBACK["cuda"].index(pick)]
        return pick, "on CUDA" + "".join(f"; {v} not exported" for v in missing)
    preferred, why = cpu_preference(flags)
    if preferred == "int8":
        problem = "not exported" if "int8" not in present else int8_problem(records.get("int8"))
        if problem is None:
            return "int8", f"{why}, and int8 is within its fidelity limit"
        why = f"{why}, but int8 is not usable: {problem}"
    pick = next(v for v in FALLBACK["cpu"] if v in present)
    missing = FALLBACK["cpu"][: FALLBACK["cpu"].index(pick)]
    return pick, why + "".join(f"; {v} not exported" for v in missing)


def cpu_preference(flags: frozenset[str]) -> tuple[str, str]:
    """The variant this kind of CPU runs fastest (by the table above) and the reason."""
    for wanted, variant, why in CPU_RULE:
        have = [f for f in wanted if f in flags]
        if have:
            return variant, f"this CPU has {have[0]}: {why}"
    return FALLBACK["cpu"][0], f"this CPU has {CPU_OTHERWISE}"


def int8_problem(record: dict | None) -> str | None:
    """None when export.json says int8 passed its fidelity limits on enough real rows, else
    what is wrong. On the 8 parity texts alone int8 can pass and still stray on real comments
    (max gap 0.116 on 2,000 real ones for a model that passed them), so auto asks for as many
    --eval-data rows as export needed to bind its flag limit (`rows_to_bind`)."""
    if not record:
        return "export.json has no entry for it; re-export"
    fidelity = record.get("fidelity") or {}
    if fidelity.get("passed") is None:
        return "export.json records no int8 fidelity check (exported before it had one); re-export"
    if not fidelity["passed"]:
        return "export.json says it is past its fidelity limits"
    rows, needed = fidelity.get("sample_rows", 0), fidelity.get("rows_to_bind")
    if needed is None:
        return "export.json records no --eval-data row count for it (an older export); re-export"
    if rows < needed:
        return (
            f"it was checked on {rows} --eval-data rows, fewer than {needed}; re-export "
            "with --eval-data (a labelled sample of your comments) or pass --variant int8"
        )
    return None
