"""A full disk while `python -m train` writes model.safetensors and while `python -m export` writes
a variant: safetensors, onnx, onnxruntime and OpenVINO each fail in their own words, and every one
becomes the one-line error (exit 2) naming the file, with the previous output kept.

RLIMIT_FSIZE stands in for a full disk: a write past it fails with EFBIG where a full disk gives
ENOSPC (SIGXFSZ ignored, so the write returns the error instead of killing the process). model.onnx
is the largest file export writes, so a limit set at the start stops it first; for the variants
built after it, the limit is lowered (prlimit) once export logs model.onnx's check, which comes
before the variant's build starts.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import QUICK_TRAIN_FLAGS, write_labelled_csv

REPO = Path(__file__).resolve().parents[1]
MiB = 2**20
FSIZE = resource.RLIMIT_FSIZE
PREVIOUS = b"the previous output"
FIX = "free some space or pass a place you can write"


def _capped(limit: int):
    def cap() -> None:  # runs in the child, before `python` starts
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(FSIZE, (limit, limit))

    return cap


def _run(argv: list[str], limit: int, lower: int | None = None) -> tuple[int, str]:
    """Run `python -m <argv>` with files capped at `limit` bytes; with `lower`, the cap drops to
    it when export logs model.onnx's check line. Returns the exit code and stderr."""
    child = subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_capped(limit),
    )
    lines = []
    for line in child.stderr:
        lines.append(line)
        if lower and line.split()[:2] == ["fp32", "model.onnx"]:
            resource.prlimit(child.pid, FSIZE, (lower, lower))
    return child.wait(timeout=60), "".join(lines)


def _previous(root: Path, name: str) -> Path:
    """An earlier output folder holding `name`, which the failed run must leave as it was."""
    out = root / "out"
    out.mkdir()
    (out / name).write_bytes(PREVIOUS)
    return out


def _assert_one_line_and_kept(
    code: int, stderr: str, stage: str, out: Path, name: str, limit: int
) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert [line for line in lines if " error: " in line] == [lines[-1]]  # the other: log lines
    assert lines[-1] == (
        f"{stage}: error: could not write {out / name} (File too large: this process may write "
        f"files of {limit // MiB}.0 MiB at most); the existing one is kept; {FIX}"
    )
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(["labelled.csv", "out"])
    assert [p.name for p in out.iterdir()] == [name] and (out / name).read_bytes() == PREVIOUS


def test_train_with_no_room_for_model_safetensors(tmp_path: Path, tiny_model_dir: Path):
    """The weights (4 MB) pass a 2 MiB cap; the files before them (config.json) do not."""
    data = write_labelled_csv(tmp_path / "labelled.csv")
    out = _previous(tmp_path, "model.safetensors")
    argv = ["train", "--data", str(data), "--model", str(tiny_model_dir), "--out", str(out)]
    code, stderr = _run([*argv, *QUICK_TRAIN_FLAGS, "--max-steps", "2", "--force"], 2 * MiB)
    _assert_one_line_and_kept(code, stderr, "train", out, "model.safetensors", 2 * MiB)


@pytest.mark.parametrize(
    ("name", "variants", "lower"),
    [
        ("model.onnx", "int8", None),  # optimum's export via torch: a Python OSError
        ("model_optimized.onnx", "optimized", MiB),  # onnxruntime: "Protobuf serialization failed"
        ("model_int8.onnx", "int8", MiB),  # onnxruntime's quantizer: its scratch copy is cut
        ("model_int8_static.xml", "int8-static", MiB),  # OpenVINO: "iostream error" on the .bin
    ],
)
def test_export_with_no_room_for_a_variant(
    tmp_path: Path, tiny_model_dir: Path, name: str, variants: str, lower: int | None
):
    """model.onnx (4 MB) and the variants (1.1 MB for int8-static's weights, 4 MB the others)
    pass their caps; the files before them (the tokenizer's, 0.7 MB) do not."""
    data = write_labelled_csv(tmp_path / "labelled.csv")
    out = _previous(tmp_path, name)
    argv = ["export", "--model", str(tiny_model_dir), "--out", str(out), "--force"]
    argv += ["--variants", variants, "--eval-data", str(data), "--eval-rows", "40"]
    code, stderr = _run(argv, 2 * MiB if lower is None else 8 * MiB, lower)
    _assert_one_line_and_kept(code, stderr, "export", out, name, lower or 2 * MiB)
