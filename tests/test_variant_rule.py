"""`--variant auto`: the rule with each kind of CPU's flags passed in, and the CLI that uses it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import write_comments_csv

from common.cpu import bf16_flag, cpu_flags
from score.__main__ import main
from score.model_folder import read_model_folder, variant_choice
from score.predict import Scorer
from score.variant_rule import auto_variant

BF16 = bf16_flag(cpu_flags()) is not None

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})  # AMD Zen 2/3, older Xeons
AVX512 = AVX2 | {"avx512f", "avx512bw"}  # Skylake-SP: AVX-512 without VNNI
ZEN4 = AVX512 | {"avx512_vnni", "avx512_bf16", "avx_vnni"}  # this project's AMD EPYC
SAPPHIRE_RAPIDS = ZEN4 | {"amx_tile", "amx_int8", "amx_bf16"}
ALDER_LAKE = AVX2 | {"avx_vnni"}  # client CPUs: VNNI on 256-bit vectors
ARM = frozenset({"fp", "asimd", "asimddp"})
CPU_VARIANTS = {"fp32", "optimized", "int8"}
PASSED = {
    "int8": {
        "max_abs_diff": 0.031,
        "fidelity": {"passed": True, "sample_rows": 2000, "rows_to_bind": 200},
    }
}


ROW_WISE = {"int8": {**PASSED["int8"], "activation_scales": "per row"}}
PER_TENSOR = {"int8": {**PASSED["int8"], "activation_scales": "per tensor"}}


@pytest.mark.parametrize(
    ("flags", "expected", "named"),
    [
        (AVX2, "optimized", "int8 is not usable: export made it with one scale per activation"),
        (AVX512, "optimized", "int8 is not usable: export made it with one scale per activation"),
        (ARM, "optimized", "no bf16 hardware, VNNI or AMX"),
        (frozenset(), "optimized", "no bf16 hardware, VNNI or AMX"),  # /proc/cpuinfo unreadable
        (ZEN4, "int8", "avx512_vnni"),
        (ALDER_LAKE, "int8", "avx_vnni"),
        (SAPPHIRE_RAPIDS, "int8", "amx_int8"),  # AMX is named before VNNI
    ],
)
def test_cpu_flags_decide_between_int8_and_optimized(flags, expected, named):
    variant, why = auto_variant("cpu", flags, CPU_VARIANTS, PER_TENSOR)
    assert variant == expected
    assert named in why
    # An export.json from before activation scales were recorded reads the same.
    assert auto_variant("cpu", flags, CPU_VARIANTS, PASSED) == (variant, why)


@pytest.mark.parametrize("flags", [AVX2, AVX512, ZEN4, SAPPHIRE_RAPIDS])
def test_row_wise_int8_runs_on_every_x86_kind_once_checked(flags):
    variant, why = auto_variant("cpu", flags, CPU_VARIANTS, ROW_WISE)
    assert variant == "int8" and "int8 is within its fidelity limits" in why
    if flags == AVX2:
        assert why.startswith("this CPU has avx2: int8 with one scale per row of activations")
    failed = {"int8": {**ROW_WISE["int8"], "fidelity": {"passed": False}}}
    assert auto_variant("cpu", flags, CPU_VARIANTS, failed)[0] == "optimized"


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"limit": None, "max_abs_diff": 0.02}, "no int8 fidelity check"),  # an older export.json
        ({"max_abs_diff": 0.01, "fidelity": {"passed": False}}, "past its fidelity limits"),
        (
            {"fidelity": {"passed": True, "sample_rows": 0, "rows_to_bind": 200}},
            "checked on 0 --eval-data rows",
        ),
        (
            {"fidelity": {"passed": True, "sample_rows": 199, "rows_to_bind": 200}},
            "fewer than 200; re-export",
        ),
        (None, "no entry"),
    ],
)
def test_int8_outside_its_fidelity_limit_is_passed_over_on_vnni(record, problem):
    records = {} if record is None else {"int8": record}
    variant, why = auto_variant("cpu", ZEN4, CPU_VARIANTS, records)
    assert variant == "optimized"
    assert "int8 is not usable" in why and problem in why


def test_missing_variants_fall_back_in_order_and_say_so():
    variant, why = auto_variant("cpu", ZEN4, {"fp32", "optimized"}, PASSED)
    assert (variant, why.endswith("int8 is not usable: not exported")) == ("optimized", True)
    variant, why = auto_variant("cpu", AVX2, {"fp32"}, {})
    assert variant == "fp32" and why.endswith("; optimized not exported")
    assert auto_variant("cuda", ZEN4, {"fp32", "optimized", "fp16"}, PASSED) == (
        "fp16",
        "on CUDA",
    )
    assert auto_variant("cuda", ZEN4, {"fp32", "optimized", "int8"}, PASSED) == (
        "optimized",
        "on CUDA; fp16 not exported",
    )


def test_explicit_variant_is_kept_with_its_reason(tmp_path: Path):
    (tmp_path / "model.onnx").write_bytes(b"")  # read_model_folder checks names only
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "config.json").write_text('{"id2label": {"0": "toxic"}, "max_length": 8}')
    (tmp_path / "export.json").write_text('{"max_length": 8, "variants": {}}')
    folder = read_model_folder(tmp_path)
    assert variant_choice(folder, "fp32", "cpu", ZEN4) == ("fp32", "asked for with --variant")
    assert variant_choice(folder, "auto", "cpu", ZEN4) == (
        "fp32",
        "auto: this CPU has avx512_bf16: OpenVINO runs its bf16 matrix multiplies in hardware, "
        "but bf16 is not usable: not exported; this CPU has avx512_vnni: VNNI does int8 dot "
        "products in one instruction, but int8-static is not usable: not exported; this CPU has "
        "avx512_vnni: VNNI does int8 dot products in one instruction, but int8 is not usable: "
        "not exported; optimized not exported",
    )


@pytest.fixture(scope="module")
def cpu_export(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny model exported for the CPU, int8 by the avx2 preset (which any x86 CPU runs)."""
    from export.run import run

    out = tmp_path_factory.mktemp("rule") / "onnx"
    run(
        model_dir=tiny_model_dir,
        out=out,
        variants=["optimized", "int8", "bf16"][: 2 + BF16],
        target_cpu="avx2",
        force=True,
    )
    return out


def test_cli_summary_names_the_auto_choice_and_why(cpu_export: Path, tmp_path: Path):
    data = write_comments_csv(tmp_path / "comments.csv")
    out = tmp_path / "out.parquet"
    # Checked on no --eval-data rows, int8 is never trusted by auto: bf16 where this CPU runs it
    # in hardware, else optimized.
    expected = "bf16" if BF16 else "optimized"
    argv = [str(data), str(out), "--model", str(cpu_export), "--provider", "cpu", "--quiet"]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main([*argv, "--variant", "auto"]) == 0
    summary = stdout.getvalue()
    precision = {"bf16": "bf16", "optimized": "fp32"}[expected]  # what the summary names
    assert f"with the {expected} model ({precision}; auto: this CPU has " in summary
    scored = pl.read_parquet(out).drop("id").to_numpy()
    texts = pl.read_csv(data)["comment_text"].fill_null("").to_list()
    direct = Scorer(cpu_export, variant=expected, provider="cpu").predict(texts)
    np.testing.assert_allclose(scored, direct, atol=1e-6)
