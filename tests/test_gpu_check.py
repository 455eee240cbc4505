"""The GPU visit kit: `benchmarks/gpu_check.sh --dry-run` runs every step of the visit on the CPU
with stand-ins, and what it leaves in --out would come back from the device machine."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from benchmarks.visit.checks import check_junit
from benchmarks.visit.cuda_libs import lib_dirs
from benchmarks.visit.limits import run_step
from benchmarks.visit.nodes import count_providers
from benchmarks.visit.outdir import check_out
from common.cpu import this_cpu

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
VISIT_STEPS = [
    "preflight", "model", "export", "comments", "nodes", "score", "scored", "benchmarks", "train",
    "pytest-gpu", "pytest-gpu-skips", "train-minilm",
]  # fmt: skip


def gpu_check(tmp_path: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    command = ["bash", str(SCRIPT), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "w")]
    return subprocess.run(
        [*command, "--python", sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_dry_run_runs_every_step_and_leaves_what_comes_back(tmp_path: Path):
    result = gpu_check(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "summary.json",
        "summary.md",
        "visit-results.tar.gz",
    ]
    assert check_out(out) == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "dry-run" and summary["gpu"] is None
    assert summary["failed"] == [] and summary["not_run"] == [] and summary["out_problems"] == []
    steps = [s["step"] for s in summary["steps"]]
    assert [s for s in steps if s != "demo-data"] == VISIT_STEPS  # demo-data: no ../shared here
    assert all(s["rc"] == 0 for s in summary["steps"])
    assert summary["total_s"] < 180  # the limit for the dry run

    figures = summary["figures"]
    assert figures["preflight"]["problems"] == []
    assert figures["preflight"]["onnxruntime_cuda_usable"] is False  # no GPU here
    assert figures["preflight"]["torch_loaded_by_probe"] is False  # as in `python -m score`
    assert figures["score"]["rows"] == 300 and figures["score"]["provider"] == "cpu"
    scored = figures["scored"]
    assert scored["rows_in"] == scored["rows_out"] == 300 and scored["ids_in_order"]
    assert scored["all_in_0_1"] and len(scored["labels"]) == 6
    nodes = figures["nodes"]
    assert nodes["provider"] == "CPUExecutionProvider" and nodes["every_node_on_provider"]
    assert nodes["nodes"] > 10 and set(nodes["nodes_by_provider"]) == {"CPUExecutionProvider"}
    engines = figures["benchmarks"]["rows_per_s"]
    assert {"pytorch-fp32-bucketed", "onnxruntime-fp32", "scorer-end-to-end"} <= set(engines)
    assert all(v > 0 for v in engines.values())
    assert figures["train"]["loss_fell"] and len(figures["train"]["losses"]) >= 2
    pytest_gpu = figures["pytest_gpu"]
    # No CUDA here: every GPU test is refused at setup, none skipped, so the step cannot pass.
    assert pytest_gpu["tests"] >= 2 and pytest_gpu["errors"] == pytest_gpu["tests"]
    assert pytest_gpu["skipped"] == 0 and pytest_gpu["ok"]

    with tarfile.open(out / "visit-results.tar.gz") as tar:
        names = tar.getnames()
    assert {"results/preflight.json", "results/logs/score.log", "results/nodes.json"} <= set(names)
    machine = this_cpu().slug()  # the benchmarks' folder is named after the machine
    assert f"results/benchmarks/{machine}/results.json" in names
    assert "results/train/metrics.json" in names
    assert not [n for n in names if n.endswith((".onnx", ".safetensors", "tokenizer.json"))]


def test_a_failure_after_the_start_still_writes_the_summary_and_archive(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    result = gpu_check(tmp_path, "--dry-run", "--data", str(tmp_path / "empty"), timeout=120)
    assert result.returncode == 2
    assert f"gpu_check: error: no train.csv in {tmp_path / 'empty'}" in result.stderr
    assert "Traceback" not in result.stderr
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"summary.json", "summary.md", "visit-results.tar.gz"}
    assert json.loads((out / "summary.json").read_text())["steps"] == []


def test_without_a_gpu_the_real_visit_fails_at_the_preflight_and_runs_nothing_else(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("id,comment_text\n1,hello\n")
    result = gpu_check(tmp_path, "--data", str(data), timeout=120)  # no --dry-run: needs CUDA
    assert result.returncode == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["mode"] == "device" and summary["failed"] == ["preflight"]
    assert [s["step"] for s in summary["steps"]] == ["preflight"]
    problems = summary["figures"]["preflight"]["problems"]
    assert "torch sees no CUDA device" in problems
    assert any(
        p.startswith("onnxruntime cannot use CUDA in a process without torch") for p in problems
    )
    assert (
        "preflight: torch sees no CUDA device" in result.stderr
    )  # the step's log, shown on failure


def test_a_step_whose_limit_does_not_fit_is_skipped_and_fails_the_visit(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("id,comment_text\n1,hello\n")
    result = gpu_check(tmp_path, "--dry-run", "--data", str(data), "--budget", "20", timeout=120)
    assert result.returncode == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    (preflight,) = summary["steps"]
    assert preflight["rc"] is None and "its 60 s limit does not fit" in preflight["skipped"]
    assert summary["not_run"] == ["preflight"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "0"], "--rows 0 is not a positive whole number"),
        (["--budget"], "--budget needs a value"),
        (["--stage", "/nonexistent"], "--stage /nonexistent is not a folder"),
        (["--bogus"], "unknown argument --bogus"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str):
    result = gpu_check(tmp_path, "--dry-run", *args, timeout=60)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"gpu_check: error: {message}")
    assert not (tmp_path / "out").exists()


def test_out_rules_of_the_device_tool(tmp_path: Path):
    for i in range(8):
        (tmp_path / f"f{i}.txt").write_text("x")
    assert check_out(tmp_path) == []
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "ok.txt").write_text("two folders down comes back")
    (tmp_path / "a" / "b" / "c" / "deep.txt").write_text("three does not")
    (tmp_path / "bad name.txt").write_text("x")
    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate(16 * 2**20)  # sparse: 16 MiB is one byte too many
    problems = check_out(tmp_path)
    assert "12 files under $OUT, at most 8 come back" in problems
    assert any(p.startswith("a/b/c/deep.txt: more than 2 folders") for p in problems)
    assert any(p.startswith("bad name.txt: a name other than") for p in problems)
    assert any(p.startswith("big.bin: 16777216 bytes") for p in problems)
    assert not any(p.startswith("a/b/ok.txt") for p in problems)


def test_cuda_lib_dirs_are_the_lib_folders_that_hold_libraries(tmp_path: Path):
    (tmp_path / "nvidia" / "cu13" / "lib").mkdir(parents=True)
    (tmp_path / "nvidia" / "cu13" / "lib" / "libcudart.so.13").write_bytes(b"")
    (tmp_path / "nvidia" / "cudnn" / "lib").mkdir(parents=True)
    (tmp_path / "nvidia" / "cudnn" / "lib" / "libcudnn.so.9").write_bytes(b"")
    (tmp_path / "nvidia" / "empty" / "lib").mkdir(parents=True)
    found = lib_dirs([tmp_path / "nvidia"])
    assert found == [tmp_path / "nvidia" / n / "lib" for n in ("cu13", "cudnn")]


def test_nodes_off_the_provider_fail_unless_they_are_shape_arithmetic():
    def node(name: str, op: str, provider: str, size: int) -> dict:
        args = {"op_name": op, "provider": provider, "output_size": str(size)}
        return {"cat": "Node", "name": f"{name}_kernel_time", "args": args}

    cuda, cpu = "CUDAExecutionProvider", "CPUExecutionProvider"
    events = [node("mm", "MatMul", cuda, 1 << 20), node("shape", "Shape", cpu, 16)]
    events.append({"cat": "Session", "name": "model_run", "args": {}})
    record = count_providers(events, "cuda", "fp16", "model_fp16.onnx")
    assert record["nodes"] == 2 and record["nodes_by_provider"] == {cuda: 1, cpu: 1}
    assert not record["every_node_on_provider"] and record["ok"]
    record = count_providers([*events, node("ln", "LayerNorm", cpu, 1 << 16)], "cuda", "x", "m")
    assert record["compute_off_provider"] == ["ln (LayerNorm)"] and not record["ok"]


def _junit(path: Path, cases: str, **counts: int) -> Path:
    attrs = " ".join(f'{k}="{v}"' for k, v in counts.items())
    path.write_text(f"<testsuites><testsuite {attrs}>{cases}</testsuite></testsuites>")
    return path


def test_junit_rule_on_the_device_and_without_cuda(tmp_path: Path):
    passed_and_skipped = _junit(
        tmp_path / "a.xml",
        '<testcase classname="t" name="a"/><testcase classname="t" name="b"><skipped/></testcase>',
        tests=2, failures=0, errors=0, skipped=1,
    )  # fmt: skip
    record = check_junit(passed_and_skipped, expect_refused=False)
    assert not record["ok"] and record["skipped"] == 1 and record["names"] == ["t::a", "t::b"]
    assert not check_junit(passed_and_skipped, expect_refused=True)["ok"]  # a skip is no refusal
    refused = _junit(
        tmp_path / "b.xml",
        '<testcase classname="t" name="a"><error/></testcase>',
        tests=1, failures=0, errors=1, skipped=0,
    )  # fmt: skip
    assert check_junit(refused, expect_refused=True)["ok"]
    assert not check_junit(refused, expect_refused=False)["ok"]


def test_a_step_past_its_limit_is_stopped_with_124(tmp_path: Path):
    row = tmp_path / "row.json"
    rc = run_step("sleepy", 0.5, tmp_path / "sleepy.log", ["sleep", "30"], row)
    assert rc == 124
    record = json.loads(row.read_text())
    assert record["step"] == "sleepy" and record["rc"] == 124 and record["seconds"] < 10
