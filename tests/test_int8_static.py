"""int8-static: NNCF's calibrated int8 of model.onnx, run by OpenVINO on any x86 CPU.

Export calibrates on --eval-data rows past the checked ones and keeps the first fp32 holdout
within the int8 limits; `--variant auto` picks it first on VNNI and AMX CPUs (flags passed in).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import write_comments_csv, write_labelled_csv
from test_variant_rule import ALDER_LAKE, AVX2, AVX512, SAPPHIRE_RAPIDS, ZEN4

from common.cpu import bf16_flag, cpu_flags, int8_dot_flag
from common.errors import UserError
from common.openvino_session import precision_for, snippets_on
from export.__main__ import main as export_main
from score.__main__ import main as score_main
from score.model_folder import read_model_folder, variant_choice
from score.variant_rule import auto_variant

PASSED = {"fidelity": {"passed": True, "sample_rows": 2000, "rows_to_bind": 200}}
ALL = {"fp32", "optimized", "int8", "int8-static", "bf16"}
RECORDS = {"int8": PASSED, "int8-static": PASSED, "bf16": PASSED}


@pytest.mark.parametrize(
    ("flags", "expected", "named"),
    [
        # bf16 first wherever it runs in hardware: int8-static strayed past the limits on
        # unseen comments on both kinds; on AMX it is the slower of the two as well
        (ZEN4, "bf16", "avx512_bf16"),
        (SAPPHIRE_RAPIDS, "bf16", "amx_bf16"),
        (ALDER_LAKE, "int8-static", "avx_vnni"),  # VNNI without bf16 hardware
        # u8 x s8 may saturate there; the per-tensor int8 record is not trusted without VNNI
        (AVX512, "optimized", "int8 is not usable: export made it with one scale per activation"),
        (AVX2, "optimized", "int8 is not usable: export made it with one scale per activation"),
    ],
)
def test_auto_picks_bf16_first_on_bf16_hardware_and_int8_static_on_vnni(flags, expected, named):
    variant, why = auto_variant("cpu", flags, ALL, RECORDS)
    assert variant == expected and named in why


def test_int8_static_checked_on_too_few_rows_gives_way_to_the_next_variant():
    few = {"fidelity": {"passed": True, "sample_rows": 40, "rows_to_bind": 200}}
    variant, why = auto_variant("cpu", ALDER_LAKE, ALL, {**RECORDS, "int8-static": few})
    assert variant == "int8"
    assert "int8-static is not usable: it was checked on 40 --eval-data rows" in why
    assert "pass --variant int8-static" in why


@pytest.mark.parametrize(
    ("flags", "precision"),
    [(ZEN4, "bf16"), (SAPPHIRE_RAPIDS, "bf16"), (ALDER_LAKE, "fp32"), (AVX2, "fp32")],
)
def test_int8_static_runs_its_float_operators_in_bf16_only_on_bf16_hardware(flags, precision):
    assert precision_for("int8-static", flags) == precision
    assert precision_for("bf16", flags) == "bf16"  # asked for: refused later where it cannot run


@pytest.mark.parametrize(
    ("flags", "on"),
    [
        # int8-static was wrong at width 32 with them, bf16 slower (docs/variants.md)
        (SAPPHIRE_RAPIDS, False),
        (ZEN4, True),
        (ALDER_LAKE, True),
        (AVX2, True),
    ],
)
def test_openvino_snippets_are_off_only_on_amx(flags, on):
    assert snippets_on(flags) is on


@pytest.fixture(scope="module")
def static_export(tmp_path_factory, trained_model_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("static")
    data = write_labelled_csv(root / "labelled.csv")
    out = root / "onnx"
    argv = ["--model", str(trained_model_dir), "--out", str(out), "--variants", "int8-static"]
    assert export_main([*argv, "--eval-data", str(data), "--eval-rows", "40"]) == 0
    return out


def test_export_calibrates_on_rows_it_does_not_check(static_export: Path):
    record = json.loads((static_export / "export.json").read_text())
    static = record["variants"]["int8-static"]
    assert (static["file"], static["runtime"]) == ("model_int8_static.xml", "openvino")
    assert static["calibration_texts"] == 30  # rows 41-70 of the file (300 wanted) ...
    assert static["fidelity"]["sample_rows"] == 40  # ... and rows 1-40 checked
    assert static["fidelity"]["passed"] and static["tried"][-1]["broken"] == []
    assert static["int8_dot_products"] is (int8_dot_flag(cpu_flags()) is not None)
    assert (static_export / "model_int8_static.bin").stat().st_size > 10_000
    assert static["size_mb"] * 2**20 > (static_export / "model_int8_static.bin").stat().st_size


def test_scoring_with_int8_static_stays_within_its_limits(
    static_export: Path, tmp_path: Path, capsys
):
    data = write_comments_csv(tmp_path / "comments.csv")
    argv = ["--model", str(static_export), "--provider", "cpu", "--quiet"]
    scores = {}
    for variant in ("fp32", "int8-static"):
        out = tmp_path / f"{variant}.parquet"
        assert score_main([str(data), str(out), *argv, "--variant", variant]) == 0
        scores[variant] = pl.read_parquet(out)
    # Its float operators run in bf16 on bf16 hardware, else fp32: export.json and the summary
    # both say which.
    floats = "bf16" if bf16_flag(cpu_flags()) else "fp32"
    summary = capsys.readouterr().out
    assert f"with the int8-static model (int8 + {floats}; asked for with --variant)" in summary
    record = json.loads((static_export / "export.json").read_text())["variants"]["int8-static"]
    assert record["precision"] == f"int8 + {floats}"
    assert scores["int8-static"]["id"].to_list() == scores["fp32"]["id"].to_list()
    fp32, q8 = (scores[v].drop("id").to_numpy() for v in ("fp32", "int8-static"))
    limit = json.loads((static_export / "export.json").read_text())["variants"]["int8-static"]
    assert 0 < np.abs(fp32 - q8).max() <= limit["fidelity"]["limits"]["max_diff"]


def test_without_calibration_rows_int8_static_is_skipped_with_the_reason(onnx_dir: Path):
    skipped = json.loads((onnx_dir / "export.json").read_text())["skipped"]
    assert skipped["int8-static"].startswith(
        "it calibrates on --eval-data rows and none were given; pass --eval-data"
    )


def test_a_folder_missing_the_weights_or_with_a_broken_ir_says_so(
    static_export: Path, tmp_path: Path, capsys
):
    import shutil

    folder = tmp_path / "onnx"
    shutil.copytree(static_export, folder)
    data = write_comments_csv(tmp_path / "comments.csv")
    out = tmp_path / "out.parquet"
    argv = [str(data), str(out), "--model", str(folder), "--provider", "cpu"]
    (folder / "model_int8_static.xml").write_text("<net>")  # cut short
    assert score_main([*argv, "--variant", "int8-static"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("score: error: OpenVINO cannot run ") and "re-export" in line
    (folder / "model_int8_static.bin").unlink()
    assert score_main([*argv, "--variant", "fp32"]) == 2  # the folder is refused as a whole
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "export.json lists model_int8_static.bin, which the folder lacks" in line
    assert not out.exists()


def _folder(tmp_path: Path, checked_with_vnni: bool) -> Path:
    """A folder as read_model_folder sees it (names only) whose int8-static was checked on a CPU
    with or without VNNI."""
    record = {**PASSED, "file": "model_int8_static.xml", "int8_dot_products": checked_with_vnni}
    for name in ("model.onnx", "model_int8_static.xml", "model_int8_static.bin"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "config.json").write_text('{"id2label": {"0": "toxic"}}')
    export = {"max_length": 8, "variants": {"int8-static": record}}
    (tmp_path / "export.json").write_text(json.dumps(export))
    return tmp_path


def test_int8_static_checked_with_vnni_is_refused_on_a_cpu_without(tmp_path: Path):
    folder = read_model_folder(_folder(tmp_path, checked_with_vnni=True))
    with pytest.raises(UserError, match=r"int8 products saturate .* pass --variant optimized"):
        variant_choice(folder, "int8-static", "cpu", AVX2)
    assert variant_choice(folder, "int8-static", "cpu", ZEN4)[0] == "int8-static"
    assert variant_choice(folder, "auto", "cpu", ZEN4)[0] == "int8-static"


def test_int8_static_checked_without_vnni_runs_anywhere(tmp_path: Path):
    folder = read_model_folder(_folder(tmp_path, checked_with_vnni=False))
    assert variant_choice(folder, "int8-static", "cpu", AVX2)[0] == "int8-static"  # as checked
    assert variant_choice(folder, "auto", "cpu", ZEN4)[0] == "int8-static"  # no saturation
    assert variant_choice(folder, "auto", "cpu", AVX2)[0] == "fp32"  # auto: slower without VNNI


def test_int8_static_tries_its_holdouts_fastest_first_and_says_why_it_fails(
    tmp_path, trained_model_dir: Path, capsys
):
    data = write_labelled_csv(tmp_path / "labelled.csv")
    out = tmp_path / "onnx"
    argv = ["--model", str(trained_model_dir), "--out", str(out), "--variants", "int8-static"]
    argv += ["--eval-data", str(data), "--eval-rows", "40", "--max-diff", "0"]
    assert export_main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "int8-static (fp32 holdout ffn) breaks its limits: max abs diff" in err
    assert not (out / "model_int8_static.xml").exists()
    failed = json.loads((out / "export.json").read_text())["failed"]["int8-static"]
    assert [t["fp32_holdout"] for t in failed["tried"]] == [
        "none", "first-layer", "ffn-output", "first-two-layers", "ffn"
    ]  # fmt: skip


def test_int8_static_holdouts_keep_their_layers_matmuls_in_floats(onnx_dir: Path, tmp_path: Path):
    import shutil

    from common.batching import TextTokenizer
    from export.quantize_static import calibration_feeds

    shutil.copy2(onnx_dir / "model.onnx", tmp_path / "model.onnx")
    feeds = calibration_feeds(TextTokenizer(onnx_dir / "tokenizer.json", 32), ["a b c"] * 8)
    never = _float_matmuls(tmp_path, feeds, "none")  # what NNCF itself leaves in floats
    holdouts = ("first-layer", "first-two-layers", "ffn")
    held = {h: _float_matmuls(tmp_path, feeds, h) - never for h in holdouts}
    # The tests' model has 2 layers of 8 MatMuls: query, key, value, the two of attention, the
    # attention output and the feed-forward pair.
    assert {_layer(name) for name in held["first-layer"]} == {"0"}
    assert len(held["first-layer"] | {n for n in never if _layer(n) == "0"}) == 8
    assert {_layer(name) for name in held["first-two-layers"]} == {"0", "1"}
    assert len(held["first-two-layers"] | never) == 16
    assert sorted(name.split("/layer.")[1] for name in held["ffn"]) == [
        "0/intermediate/dense/MatMul", "0/output/dense/MatMul",
        "1/intermediate/dense/MatMul", "1/output/dense/MatMul",
    ]  # fmt: skip


def _layer(name: str) -> str:
    return name.split("/layer.")[1].split("/")[0]


def _float_matmuls(folder: Path, feeds: list[dict], holdout: str) -> set[str]:
    """The encoder MatMuls of an int8-static file with no FakeQuantize feeding them."""
    import openvino as ov

    from export.quantize_static import quantize_static

    path, _ = quantize_static(folder, "model.onnx", feeds, holdout=holdout, flags=cpu_flags())
    ops = ov.Core().read_model(str(path)).get_ops()
    quantized = {
        target.get_node().get_friendly_name()
        for op in ops
        if op.get_type_name() == "FakeQuantize"
        for target in op.output(0).get_target_inputs()
    }
    return {
        op.get_friendly_name() for op in ops
        if op.get_type_name() == "MatMul" and "/layer." in op.get_friendly_name()
    } - quantized  # fmt: skip
