"""`--engine ray` on a real local Ray instance, under real faults: a run killed with SIGKILL
resumes to the output of an uninterrupted run, and a model worker killed mid-run costs no row.

Ray's processes are found in /proc: the driver is started with setsid, and every process of
the local Ray instance it starts keeps its SID (Linux only). Chunks of two rows make enough
parts that a kill lands mid-run while the run stays a few seconds long: the tiny model scores
a part in a few milliseconds, so the big input has to be big enough that the run cannot end
between the test seeing its first parts and the kill (600 rows left a window under a second).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_score import REPO, _write_comments

from score.__main__ import main

NO_RAY = "needs the ray extra: pip install -e '.[ray]'"
pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason=NO_RAY),
    pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc"),
]

CHUNK = 2
SMALL, BIG = 20, 2000  # rows of the inputs, in this order: the small one is done long before
WORKER = "ray::MapWorker(MapBatches(ChunkScorer))"  # the title Ray gives a model worker


def _command(inputs: Path, out: Path, onnx_dir: Path, *extra: str) -> list[str]:
    argv = [str(inputs), str(out), "--model", str(onnx_dir), "--engine", "ray", "--quiet"]
    flags = ["--chunk-rows", str(CHUNK), "--variant", "fp32", "--num-workers", "1"]
    return [sys.executable, "-m", "score", *argv, *flags, *extra]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _parts(out: Path, stem: str = "*") -> list[Path]:
    return sorted((out.parent / f".{out.name}.parts").glob(f"{stem}/part-*.parquet"))


def _started_by(driver: int) -> dict[int, str]:
    """The live processes with the driver's SID (it and its Ray instance): {pid: command line}."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            sid = int(stat.read_text().rsplit(")", 1)[1].split()[3])
            line = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue  # it ended meanwhile
        if sid == driver:
            found[int(stat.parent.name)] = line
    return found


def _kill_the_rest(driver: int) -> None:
    """SIGKILL what is left of a run's local Ray instance (it outlives a killed driver by about
    a minute), so nothing writes or competes for the CPUs afterwards."""
    for pid in _started_by(driver):
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _started_by(driver) and time.monotonic() < deadline:
        time.sleep(0.05)


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=os.setsid
    )


def _still_running(proc: subprocess.Popen, out: Path) -> None:
    """Fail with the reason if the run ended, or put its output in place, before the kill."""
    assert proc.returncode != 0, "the run finished before it was killed: make it longer"
    assert (out / "note.txt").is_file(), "the run replaced the output before it was killed"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, onnx_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resume-ray")
    inputs = root / "in"
    inputs.mkdir()
    _write_comments(inputs / "a-small.csv", SMALL)
    _write_comments(inputs / "b-big.csv", BIG)
    out = root / "reference"
    done = subprocess.run(_command(inputs, out, onnx_dir), cwd=REPO, capture_output=True)
    assert done.returncode == 0, done.stderr
    return inputs, out


def _previous_output(reference: Path, out: Path) -> dict[str, bytes]:
    """An earlier output of the scorer, which --force replaces only once a run is complete."""
    shutil.copytree(reference, out)
    (out / "note.txt").write_text("the previous results")
    return _tree(out)


def test_a_killed_run_resumes_to_the_same_output(tmp_path, onnx_dir, uninterrupted, capsys):
    inputs, reference = uninterrupted
    out = tmp_path / "scored"
    previous = _previous_output(reference, out)
    command = _command(inputs, out, onnx_dir, "--force")
    proc = _start(command)
    deadline = time.monotonic() + 180
    while len(_parts(out, "a-small")) < SMALL // CHUNK or len(_parts(out, "b-big")) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, "the run never got going"
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=60)
    _kill_the_rest(proc.pid)
    _still_running(proc, out)
    assert _tree(out) == previous  # untouched until the run completes
    kept = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _parts(out)}
    assert SMALL // CHUNK + 3 <= len(kept) < (SMALL + BIG) // CHUNK

    shutil.rmtree(out)  # else the other command stops at the output (no --force) first
    argv = command[3:-1]  # the same command without --force, and another variant
    assert main([*argv, "--variant", "optimized"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (
        f"score: error: {tmp_path / '.scored.parts'} holds the progress of another run "
        "(another variant); run that command again to resume it, or pass --force to discard it"
    )
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _parts(out)} == kept

    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"resumed {len(kept) * CHUNK} rows scored by an earlier run" in done.stdout
    assert _tree(out) == _tree(reference)  # same parts, rows, order and scores, byte for byte
    for part, (inode, modified) in kept.items():  # moved into place, never scored again
        moved = out / part.parent.name / part.name
        assert (moved.stat().st_ino, moved.stat().st_mtime_ns) == (inode, modified)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored"]  # progress folder gone


def test_a_killed_model_worker_costs_no_row(tmp_path, onnx_dir, uninterrupted):
    """Ray restarts the actor and retries its task; the alternative allowed is one line and
    the previous output untouched."""
    inputs, reference = uninterrupted
    out = tmp_path / "scored"
    previous = _previous_output(reference, out)
    proc = _start(_command(inputs, out, onnx_dir, "--force"))
    try:
        deadline = time.monotonic() + 180
        while len(_parts(out)) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "the run never got going"
            time.sleep(0.02)
        workers = [pid for pid, line in _started_by(proc.pid).items() if line.startswith(WORKER)]
        assert len(workers) == 1, _started_by(proc.pid)
        os.kill(workers[0], signal.SIGKILL)
        assert len(_parts(out)) < (SMALL + BIG) // CHUNK  # killed with work left to do
        stdout, stderr = (text.decode() for text in proc.communicate(timeout=300))
    finally:
        _kill_the_rest(proc.pid)
    if proc.returncode == 0:
        assert f"scored {SMALL + BIG} rows" in stdout
        assert _tree(out) == _tree(reference)
    else:
        assert stderr.strip().splitlines()[-1].startswith("score: error: "), stderr
        assert "Traceback" not in stderr
        assert _tree(out) == previous
