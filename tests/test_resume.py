"""A stopped scoring run resumes where it stopped, and its output says what made it.

Real processes are stopped with real signals; the rerun is the same command, and its output is
compared with an uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import write_comments_csv
from test_score import REPO, _write_comments

from common.cpu import bf16_flag, cpu_flags
from common.openvino_session import streams_for
from score.__main__ import main

ROWS, CHUNK = 30_000, 1_000


def _command(source: Path, out: Path, onnx_dir: Path, *extra: str) -> list[str]:
    argv = [str(source), str(out), "--model", str(onnx_dir), "--chunk-rows", str(CHUNK)]
    return [sys.executable, "-m", "score", *argv, "--variant", "fp32", *extra]


def _parts(out: Path) -> list[Path]:
    return sorted((out.parent / f".{out.name}.parts").glob("part-*.parquet"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, onnx_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resume")
    source = _write_comments(root / "comments.csv", ROWS)
    out = root / "reference.parquet"
    done = subprocess.run(_command(source, out, onnx_dir), cwd=REPO, capture_output=True)
    assert done.returncode == 0, done.stderr
    return source, out


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_stopped_run_resumes_to_the_same_output(tmp_path, onnx_dir, uninterrupted, name):
    source, reference = uninterrupted
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"the previous results")
    command = _command(source, out, onnx_dir, "--force")
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_parts(out)) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, "scoring never got going"
        time.sleep(0.02)
    proc.send_signal(getattr(signal, name))
    _, err = proc.communicate(timeout=60)
    assert out.read_bytes() == b"the previous results"  # untouched until the run completes
    if name != "SIGKILL":
        assert proc.returncode == 130
        assert "run the same command again to resume" in err.decode().strip().splitlines()[-1]
    kept = len(_parts(out))
    assert 3 <= kept < ROWS // CHUNK
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"resumed {kept * CHUNK} rows scored by an earlier run" in done.stdout
    assert pq.read_table(out).equals(pq.read_table(reference))  # same rows, order, scores
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]  # work folder gone


@pytest.mark.skipif(
    streams_for(cpu_flags(), 2) == 1 or bf16_flag(cpu_flags()) is None,
    reason="OpenVINO keeps batches in flight in the scorer only on CPUs with bf16 hardware",
)
@pytest.mark.parametrize("attempt", range(3))  # where the signal lands varies from run to run
def test_a_run_with_batches_in_flight_stops_cleanly_on_ctrl_c(tmp_path, onnx_dir, attempt):
    """bf16 on OpenVINO, two batches in flight: Ctrl-C waits for them, then exits as always."""
    source = _write_comments(tmp_path / "comments.csv", ROWS)
    out = tmp_path / "scores.parquet"
    command = [*_command(source, out, onnx_dir)[:-2], "--variant", "bf16", "--threads", "2"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while len(_parts(out)) < 2 + attempt:
        assert proc.poll() is None, "the run ended before it could be stopped"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-500:]
    assert "run the same command again to resume" in err.decode().strip().splitlines()[-1]


def _stop_after_parts(command: list[str], out: Path, parts: int) -> None:
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while len(_parts(out)) < parts:
        assert proc.poll() is None, "the run ended before it could be stopped"
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=60)


def test_progress_of_another_run_is_refused_unless_forced(tmp_path, onnx_dir, capsys):
    source = _write_comments(tmp_path / "comments.csv", ROWS)
    out = tmp_path / "scores.parquet"
    _stop_after_parts(_command(source, out, onnx_dir), out, 2)
    other = write_comments_csv(tmp_path / "other.csv")
    argv = [str(other), str(out), "--model", str(onnx_dir), "--chunk-rows", str(CHUNK), "--quiet"]
    assert main([*argv, "--variant", "fp32"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (
        f"score: error: {tmp_path / '.scores.parquet.parts'} holds the progress of another run "
        "(another input); run that command again to resume it, or pass --force to discard it"
    )
    assert not out.exists() and len(_parts(out)) >= 2  # the other run's progress is kept
    assert main([*argv, "--variant", "fp32", "--force"]) == 0
    assert pq.read_metadata(out).num_rows == 20  # the other input's rows, none of the first's
    assert not _parts(out)


def test_a_different_variant_does_not_mix_with_kept_progress(tmp_path, onnx_dir, capsys):
    source = _write_comments(tmp_path / "comments.csv", ROWS)
    out = tmp_path / "scores.parquet"
    _stop_after_parts(_command(source, out, onnx_dir), out, 2)
    argv = [str(source), str(out), "--model", str(onnx_dir), "--chunk-rows", str(CHUNK)]
    assert main([*argv, "--variant", "optimized", "--quiet"]) == 2
    assert "holds the progress of another run (another variant)" in capsys.readouterr().err


def test_the_output_says_what_made_it(tmp_path, trained_model_dir):
    from export.run import run as export

    onnx_dir = tmp_path / "onnx"
    export(model_dir=trained_model_dir, out=onnx_dir, variants=["int8"])  # with thresholds
    source = write_comments_csv(tmp_path / "comments.csv")
    out = tmp_path / "scores.parquet"
    argv = [str(source), str(out), "--model", str(onnx_dir), "--thresholds", "--quiet"]
    assert main([*argv, "--variant", "int8"]) == 0
    made_by = json.loads(pq.read_schema(out).metadata[b"toxic_pipeline"])
    export_json = (onnx_dir / "export.json").read_bytes()
    assert made_by["model"]["export_sha256"] == hashlib.sha256(export_json).hexdigest()
    assert made_by["model"]["source"] == str(trained_model_dir)
    assert (made_by["variant"], made_by["precision"]) == ("int8", "int8 + fp32")
    thresholds = json.loads((onnx_dir / "thresholds.json").read_text())
    assert made_by["labels"] == list(thresholds)
    assert made_by["thresholds"] == pytest.approx([t["threshold"] for t in thresholds.values()])
    assert made_by["input"] == {
        "name": "comments.csv",
        "bytes": source.stat().st_size,
        "modified_ns": source.stat().st_mtime_ns,
        "rows": 20,
    }
    assert made_by["version"] == "0.1.0"  # pyproject's version of this project


def test_an_input_that_changes_while_scored_is_refused(tmp_path, onnx_dir, capsys, monkeypatch):
    """The input is rewritten after the last chunk is read: nothing is written."""
    import score.run as run_module

    source = write_comments_csv(tmp_path / "comments.csv")
    out = tmp_path / "scores.parquet"
    real = run_module._score_file

    def score_then_touch(*args, **kwargs):
        counts = real(*args, **kwargs)
        source.write_text(source.read_text() + "late,a row written while scoring\n")
        return counts

    monkeypatch.setattr(run_module, "_score_file", score_then_touch)
    assert main([str(source), str(out), "--model", str(onnx_dir), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"score: error: {source} changed or disappeared while it was being scored; nothing was "
        "written. Score it again once nothing writes to it"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comments.csv"]
