"""The bf16 variant: model.onnx run by OpenVINO in bf16, where the CPU does bf16 in hardware.

Whether bf16 is checked and picked is a function of the CPU's facts, tested here with each kind
of CPU's flags passed in; the real OpenVINO run is tested on the kind of CPU the suite is on
(bf16 where it has avx512_bf16 or amx_bf16, the refusal elsewhere).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import write_comments_csv
from test_variant_rule import ALDER_LAKE, AVX2, SAPPHIRE_RAPIDS, ZEN4

from common.cpu import NO_BF16, bf16_flag, cpu_flags
from common.errors import UserError
from common.openvino_session import OpenVinoSession, streams_for
from common.sessions import open_session
from export.checks import plan
from score.__main__ import main as score_main
from score.model_folder import read_model_folder, variant_choice
from score.variant_rule import auto_variant

HERE_BF16 = bf16_flag(cpu_flags()) is not None
PASSED = {"fidelity": {"passed": True, "sample_rows": 2000, "rows_to_bind": 200}}
CPU_VARIANTS = {"fp32", "optimized", "int8", "bf16"}


NO_BF16_HARDWARE = "this CPU has none of amx_bf16, avx512_bf16, so it cannot be checked here"


@pytest.mark.parametrize(
    ("flags", "without", "checked"),
    [(ZEN4, (), True), (SAPPHIRE_RAPIDS, (), True), (AVX2, (), False), (ZEN4, ("bf16",), False)],
)
def test_export_checks_bf16_only_where_the_cpu_runs_it(flags, without, checked):
    tried, left_out = plan(
        None, flags, cuda=False, eval_data=False, optimizer=None, without=without
    )
    assert ("bf16" in tried) is checked
    assert ("bf16" in left_out) is not checked
    if flags == AVX2:
        assert left_out["bf16"].startswith(NO_BF16_HARDWARE)


def test_export_refuses_bf16_named_on_a_cpu_without_it():
    with pytest.raises(UserError, match=f"^--variants bf16: {NO_BF16_HARDWARE}"):
        plan(["bf16"], ALDER_LAKE, cuda=False, eval_data=False, optimizer=None)


@pytest.mark.parametrize(
    ("flags", "expected", "named"),
    [
        (ZEN4, "bf16", "avx512_bf16"),
        (SAPPHIRE_RAPIDS, "bf16", "amx_bf16"),
        (ALDER_LAKE, "int8", "avx_vnni"),  # VNNI, no bf16
        # A per-tensor int8 file (no activation_scales recorded) is not trusted without VNNI.
        (AVX2, "optimized", "int8 is not usable: export made it with one scale per activation"),
    ],
)
def test_auto_picks_bf16_first_where_it_runs_in_hardware(flags, expected, named):
    records = {"bf16": PASSED, "int8": PASSED}
    variant, why = auto_variant("cpu", flags, CPU_VARIANTS, records)
    assert variant == expected and named in why


def test_bf16_past_its_limits_or_unchecked_falls_to_int8_and_says_why():
    failed = {"bf16": {"fidelity": {"passed": False}}, "int8": PASSED}
    variant, why = auto_variant("cpu", ZEN4, CPU_VARIANTS, failed)
    assert variant == "int8"
    assert "but bf16 is not usable: export.json says it is past its fidelity limits" in why
    variant, why = auto_variant("cpu", ZEN4, CPU_VARIANTS - {"bf16"}, {"int8": PASSED})
    assert (variant, "bf16 is not usable: not exported" in why) == ("int8", True)


def test_explicit_bf16_is_refused_on_a_cpu_without_bf16(onnx_dir: Path):
    folder = read_model_folder(onnx_dir)
    with pytest.raises(UserError, match=f"--variant bf16 needs bf16 .*{NO_BF16}"):
        variant_choice(folder, "bf16", "cpu", AVX2)


@pytest.mark.parametrize("snippets", [True, False])
def test_openvino_runs_the_onnx_file_as_onnxruntime_does(onnx_dir: Path, snippets: bool):
    """fp32 on OpenVINO, on any CPU, with its generated kernels or without them (int8-static on
    AMX): the same session interface and the same logits."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 2000, size=(3, 9))
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    openvino = OpenVinoSession(onnx_dir / "model.onnx", "fp32", threads=1, snippets=snippets)
    assert [i.name for i in openvino.get_inputs()] == list(feed)
    (ours,) = openvino.run(["logits"], feed)
    (theirs,) = open_session(onnx_dir / "model.onnx", "cpu").run(["logits"], feed)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize(
    ("flags", "threads", "streams"),
    [
        (SAPPHIRE_RAPIDS, 2, 2),
        (SAPPHIRE_RAPIDS, 1, 1),
        (ZEN4, 2, 2),
        (ZEN4, 1, 1),
        (ALDER_LAKE, 4, 1),  # VNNI without bf16: not measured
        (AVX2, 4, 1),
    ],
)
def test_two_batches_in_flight_only_on_bf16_hardware_with_two_threads(flags, threads, streams):
    assert streams_for(flags, threads) == streams


@pytest.mark.parametrize("streams", [1, 2])
def test_batches_in_flight_give_each_batch_its_own_logits(onnx_dir: Path, streams: int):
    """Batches of several shapes through run_batches: each key comes back once, with the logits
    its own feed gives when run alone."""
    rng = np.random.default_rng(1)
    feeds = {}
    for key, (rows, width) in enumerate([(3, 9), (1, 40), (5, 17), (2, 9), (4, 64), (1, 2)]):
        ids = rng.integers(1000, 2000, size=(rows, width))
        feeds[key] = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        feeds[key]["token_type_ids"] = np.zeros_like(ids)
    openvino = OpenVinoSession(onnx_dir / "model.onnx", "fp32", threads=2, streams=streams)
    got = list(openvino.run_batches(feeds.items(), "logits"))
    assert sorted(key for key, _ in got) == list(feeds)
    for key, logits in got:
        (alone,) = openvino.run(["logits"], feeds[key])
        np.testing.assert_allclose(logits, alone, atol=1e-5)


def test_a_caller_that_stops_early_leaves_no_batch_in_flight(onnx_dir: Path):
    """Ctrl-C mid-run: the batches still running finish before the generator lets go, so none
    calls back into an interpreter that is shutting down (which aborted the process)."""
    ids = np.random.default_rng(2).integers(1000, 2000, size=(256, 512))
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    feed["token_type_ids"] = np.zeros_like(ids)
    openvino = OpenVinoSession(onnx_dir / "model.onnx", "fp32", threads=2, streams=2)
    batches = openvino.run_batches(((key, feed) for key in range(8)), "logits")
    next(batches)
    batches.close()
    assert all(request.wait_for(0) for request in openvino.requests)


@pytest.mark.skipif(HERE_BF16, reason="this CPU runs bf16 in hardware: the refusal is not met")
def test_openvino_refuses_to_call_fp32_bf16_on_a_cpu_without_it(onnx_dir: Path):
    with pytest.raises(UserError, match=f"OpenVINO runs model.onnx in f32, not bf16: {NO_BF16}"):
        OpenVinoSession(onnx_dir / "model.onnx", "bf16")


def test_this_cpu_exports_and_scores_bf16_or_says_why_not(onnx_dir: Path, tmp_path: Path):
    """The branch this CPU takes, end to end through both CLIs."""
    record = json.loads((onnx_dir / "export.json").read_text())
    data = write_comments_csv(tmp_path / "comments.csv")
    argv = ["--model", str(onnx_dir), "--provider", "cpu", "--quiet"]
    out = {v: tmp_path / f"{v}.parquet" for v in ("fp32", "bf16")}
    assert score_main([str(data), str(out["fp32"]), *argv, "--variant", "fp32"]) == 0
    code = score_main([str(data), str(out["bf16"]), *argv, "--variant", "bf16"])
    if not HERE_BF16:
        assert record["skipped"]["bf16"].startswith(NO_BF16_HARDWARE)
        assert "bf16" not in record["variants"]
        assert code == 2 and not out["bf16"].exists()
        return
    bf16 = record["variants"]["bf16"]
    assert (bf16["file"], bf16["runtime"], bf16["fidelity"]["passed"]) == (
        "model.onnx",
        "openvino",
        True,
    )
    assert code == 0
    fp32, ours = (pl.read_parquet(out[v]) for v in ("fp32", "bf16"))
    assert ours["id"].to_list() == fp32["id"].to_list()
    gap = np.abs(ours.drop("id").to_numpy() - fp32.drop("id").to_numpy()).max()
    assert 0 < gap <= bf16["fidelity"]["limits"]["max_diff"]  # bf16 really ran: not bit-equal
