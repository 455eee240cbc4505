"""Every variant's facts, once: the file export writes, the runtime that runs it, its precision,
the CPU it needs, the limits it is held to and its place in `--variant auto`. Export builds and
checks them, score opens and chooses among them, the benchmarks name them from here; adding a
variant is one entry below plus its build function in export/convert.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

from common.cpu import BF16_FLAGS, INT8_DOT_FLAGS, VNNI_FLAGS, bf16_flag, isa_tag


@dataclass(frozen=True)
class Limits:
    """How far a reduced-precision variant may stray from PyTorch fp32; the defaults keep flags
    and rankings as they were."""

    max_diff: float = 0.05
    p99_diff: float = 0.02
    min_flag_agreement: float = 0.995
    max_auc_drop: float = 0.002

    @property
    def rows_to_bind(self) -> int:
        """--eval-data rows from which one flipped flag (or one reordered near-tie) no longer
        breaks the flag and ROC-AUC limits alone: 200 at 99.5%. Below it they measure nothing."""
        if self.min_flag_agreement >= 1:
            return 1
        return math.ceil(1 / (1 - self.min_flag_agreement) - 1e-9)

    def broken(self, figures: dict) -> list[str]:
        """The limits `figures` break, each as 'what measured > limit'."""
        out = []
        if not figures["max_abs_diff"] <= self.max_diff:  # `not <=` so NaN breaks it too
            out.append(f"max abs diff {figures['max_abs_diff']:.3f} > {self.max_diff}")
        if not figures["p99_abs_diff"] <= self.p99_diff:
            out.append(f"p99 abs diff {figures['p99_abs_diff']:.3f} > {self.p99_diff}")
        if figures.get("sample_rows", 0) < self.rows_to_bind:
            return out
        agree = figures.get("flag_agreement_min")
        if agree is not None and agree < self.min_flag_agreement:
            out.append(f"flag agreement {agree:.2%} < {self.min_flag_agreement:.1%}")
        change = figures.get("roc_auc_change")
        if change is not None and not change >= -self.max_auc_drop:
            out.append(f"ROC-AUC change {change:+.4f} < -{self.max_auc_drop}")
        return out


@dataclass(frozen=True)
class Variant:
    name: str
    file: str  # in the export folder; an OpenVINO IR (.xml) keeps its weights in the .bin beside
    runtime: str  # "onnxruntime" or "openvino"
    devices: tuple[str, ...]  # where it runs: "cpu", "cuda"
    arith: str  # the arithmetic of its matrix multiplies: fp32, fp16, bf16, int8
    parity_limit: float | None  # largest probability gap allowed; None: held to `Limits`
    needs: tuple[str, ...] = ()  # CPU flags, one of which it needs to be checked and run
    auto_on: tuple[str, ...] = ()  # auto tries it only on CPUs with one of these ("": any)
    calibrated: bool = False  # built from --eval-data rows (needs --eval-data)

    @property
    def reduced(self) -> bool:
        """Held to the fidelity limits (int8, bf16) rather than a parity limit."""
        return self.parity_limit is None


ANY_CPU = ("",)
# On a CPU without VNNI or AMX, auto tries int8 only in the avx2 preset's row-wise form (one
# scale per row of activations, u8 weights): score/variant_rule.py refuses the other forms there.
ROW_INT8_FLAG = "avx2"
VARIANTS = {
    v.name: v
    for v in (
        Variant("fp32", "model.onnx", "onnxruntime", ("cpu", "cuda"), "fp32", 1e-4,
                auto_on=ANY_CPU),
        Variant("optimized", "model_optimized.onnx", "onnxruntime", ("cpu", "cuda"), "fp32",
                1e-4, auto_on=ANY_CPU),
        Variant("fp16", "model_fp16.onnx", "onnxruntime", ("cuda",), "fp16", 1e-2),
        Variant("int8", "model_int8.onnx", "onnxruntime", ("cpu",), "int8", None,
                auto_on=(*INT8_DOT_FLAGS, ROW_INT8_FLAG)),
        Variant("bf16", "model.onnx", "openvino", ("cpu",), "bf16", None, needs=BF16_FLAGS,
                auto_on=BF16_FLAGS),
        Variant("int8-static", "model_int8_static.xml", "openvino", ("cpu",), "int8", None,
                auto_on=INT8_DOT_FLAGS, calibrated=True),
    )
}  # fmt: skip

# export.json's "last_layer" where export traced the last encoder layer for [CLS] only (every
# variant then does that layer's work for one position per text); "whole" otherwise.
CLS_ONLY = "cls-only"

# `--variant auto` tries these in order and runs the first that this machine runs, export kept
# and, for a reduced variant, checked on enough real rows. Each CPU order comes from rows/s and
# fidelity measured on that kind of CPU (docs/variants.md, "The auto rule", has the figures,
# dates and commands); on a CPU without VNNI, AMX or bf16 hardware only the fp32 variants and
# int8's row-wise form are tried.
AUTO_ORDER = {
    # AMD Zen 4 (avx512_vnni, avx512_bf16), texts to probabilities on 1,000 unseen real
    # comments, two batches in flight: bf16 292 rows/s within every limit, int8-static 420
    # outside them (max gap 0.053, flags agreeing 99.30%), int8 171, optimized 143, fp32 137
    # (2026-12-08, python -m benchmarks all --device cpu --rows 1000 --repeats 5 --texts
    # unseen.csv); int8-static strayed on 2026-12-07 too (flags 99.30%), each time after
    # export's check had passed it; so bf16 goes first. On an AVX2-only EPYC bf16 and
    # int8-static are not tried (auto_on), and int8 only in its row-wise form: within every
    # limit and 1.07x optimized in the median of nine A/B runs (2026-12-07); 7-bit weights,
    # faster in A/B runs, strayed nearer the limits on unseen comments (not kept). On a CPU
    # with VNNI but no bf16 hardware the order is not measured: int8-static goes first there.
    "cpu": ("bf16", "int8-static", "int8", "optimized", "fp32"),
    # Intel Xeon with AMX, texts to probabilities on 1,000 unseen real comments, two batches in
    # flight: bf16 778 rows/s within every limit, int8-static 696 with flags agreeing 99.30%
    # (outside), int8 211, fp32 192, optimized 174 (2026-12-08, the same command with 2 repeats;
    # before the [CLS]-only last layer).
    "cpu-amx": ("bf16", "int8-static", "int8", "optimized", "fp32"),
    "cuda": ("fp16", "optimized", "fp32"),
}


def auto_order(provider: str, flags: frozenset[str]) -> tuple[str, ...]:
    """The order `--variant auto` tries on this provider and CPU."""
    amx = provider == "cpu" and isa_tag(flags) == "amx"
    return AUTO_ORDER["cpu-amx" if amx else provider]


# Why a CPU flag makes a variant worth trying: the summary line of score quotes it.
FLAG_REASONS = {
    ROW_INT8_FLAG: "int8 with one scale per row of activations ran faster than fp32 on AVX2",
    "amx_int8": "AMX multiplies int8 matrices in tiles",
    **dict.fromkeys(VNNI_FLAGS, "VNNI does int8 dot products in one instruction"),
    **dict.fromkeys(BF16_FLAGS, "OpenVINO runs its bf16 matrix multiplies in hardware"),
}


def precision(name: str, flags: frozenset[str]) -> str:
    """What a variant computes in on a CPU with `flags`: int8-static's float operators run in
    bf16 where the CPU has bf16 hardware, else fp32; int8's are fp32."""
    if name == "int8-static":
        return "int8 + " + ("bf16" if bf16_flag(flags) else "fp32")
    if name == "int8":
        return "int8 + fp32"
    return VARIANTS[name].arith


def auto_flag(variant: Variant, flags: frozenset[str]) -> str | None:
    """The flag of `flags` for which auto tries `variant` ("" for any CPU), or None."""
    return next((f for f in variant.auto_on if f == "" or f in flags), None)
