"""The rule behind `--variant auto`: which exported variant runs, from the device and CPU flags.

A pure function of the facts passed in (provider, CPU flags, what export.json lists), so it is
tested with the flags of every kind of CPU. The order and flags are common/variants.py's.
"""

from __future__ import annotations

from common.cpu import int8_dot_flag
from common.errors import UserError
from common.variants import FLAG_REASONS, VARIANTS, auto_flag, auto_order


def auto_variant(
    provider: str, flags: frozenset[str], present: set[str], records: dict[str, dict]
) -> tuple[str, str]:
    """The variant to run and why; `present` are the exported files, `records` export.json's
    entries. The first variant in `auto_order` (per provider and CPU kind) that this CPU is
    worth it on (its `auto_on` flags), export kept and, if reduced, checked on enough rows; each
    one passed over says why."""
    passed_over, missing = [], []
    for name in auto_order(provider, flags):
        flag = auto_flag(VARIANTS[name], flags) if provider == "cpu" else ""
        if flag is None:
            continue
        check = PROBLEMS.get(name, lambda record, flags: None)
        problem = "not exported" if name not in present else check(records.get(name), flags)
        if flag:  # a variant this CPU runs faster than fp32
            why = f"this CPU has {flag}: {FLAG_REASONS[flag]}"
            if problem is None:
                picked = f"{why}, and {name} is within its fidelity limits"
                return name, "; ".join([*passed_over, picked])
            passed_over.append(f"{why}, but {name} is not usable: {problem}")
        elif problem is None:
            head = "; ".join(passed_over) or PLAIN[provider]
            return name, head + "".join(f"; {m} not exported" for m in missing)
        else:
            missing.append(name)
    raise UserError("the export folder has no model.onnx; re-export it with python -m export")


PLAIN = {  # why the plain variant runs when nothing was passed over
    "cuda": "on CUDA",
    "cpu": "this CPU has no bf16 hardware, VNNI or AMX, so neither bf16 nor int8 gains much",
}


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


def int8_problem(record: dict | None, variant: str = "int8") -> str | None:
    """None when export.json says int8 passed its fidelity limits on enough real rows, else
    what is wrong. On the 8 parity texts alone int8 can pass and still stray on real comments
    (max gap 0.116 on 2,000 real ones for a model that passed them), so auto asks for as many
    --eval-data rows as export needed to bind its flag limit (`rows_to_bind`)."""
    if (problem := fidelity_problem(variant, record)) is not None:
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


def cpu_kind_problem(record: dict | None, flags: frozenset[str]) -> str | None:
    """A file checked where int8 dot products do not saturate (VNNI, AMX) strays further on a CPU
    without them, so it is held to that kind; None when this CPU is of the kind checked."""
    if (record or {}).get("int8_dot_products") and not int8_dot_flag(flags):
        return (
            "export checked it on a CPU with VNNI or AMX and this one has neither, so its int8 "
            "products saturate and it strays further than checked; re-export on this kind of CPU"
        )
    return None


def row_scales_problem(record: dict | None, flags: frozenset[str]) -> str | None:
    """Without VNNI or AMX, only the avx2 preset's int8 (a scale per row of activations, u8
    weights) stays within its limits and gains speed: a file with one scale per activation
    tensor strays on real comments, and one with s8 weights saturates; None when it is usable."""
    if int8_dot_flag(flags) or (record or {}).get("activation_scales") == "per row":
        return None
    return (
        "export made it with one scale per activation tensor, which strays on a CPU without "
        "VNNI or AMX; re-export on this CPU, or with --target-cpu avx2"
    )


# bf16 rounds every product's inputs to 8 significant bits, the same for every text, so unlike
# int8 (whose per-batch scales follow outliers) the texts export checked suffice.
PROBLEMS = {
    "bf16": lambda record, flags: fidelity_problem("bf16", record),
    "int8": lambda record, flags: int8_problem(record) or row_scales_problem(record, flags),
    "int8-static": lambda record, flags: (
        int8_problem(record, "int8-static") or cpu_kind_problem(record, flags)
    ),
}
