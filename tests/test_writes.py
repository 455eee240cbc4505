"""The one write rule (`common.writes`): temp name beside the target, fsync, rename; --force to
replace; the old output kept until the new one is complete; dead runs' leftovers removed."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import UserError
from common.writes import atomic_file, check_target, staged_folder, write_text

REPO = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    return int(done.stdout)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_file_is_replaced_only_when_the_block_succeeds(tmp_path: Path):
    target = tmp_path / "out.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "old" and _names(tmp_path) == ["out.json"]
    write_text(target, "new")
    assert target.read_text() == "new" and _names(tmp_path) == ["out.json"]


def test_folder_keeps_the_old_one_until_the_new_one_is_complete(tmp_path: Path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_folder(out) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("training failed at the end")
    assert _names(out) == ["old.txt"] and _names(tmp_path) == ["model"]
    with staged_folder(out) as tmp:
        (tmp / "new.txt").write_text("new")
        assert _names(out) == ["old.txt"]  # still there while the new one is written
    assert _names(out) == ["new.txt"] and _names(tmp_path) == ["model"]


def test_leftovers_of_dead_runs_are_removed_and_logged(tmp_path: Path, caplog):
    dead, alive = _dead_pid(), os.getppid()
    target = tmp_path / "scores.parquet"
    (tmp_path / f".scores.parquet.tmp-{dead}").write_bytes(b"half a file")
    (tmp_path / f".scores.parquet.tmp-{alive}").write_bytes(b"a live run's file")
    (tmp_path / f".other.parquet.tmp-{dead}").write_bytes(b"not ours")
    with caplog.at_level(logging.WARNING, logger="common.writes"):
        write_text(target, "new")
    assert _names(tmp_path) == sorted(
        [".other.parquet.tmp-" + str(dead), f".scores.parquet.tmp-{alive}", "scores.parquet"]
    )
    assert f"left by a run that died (pid {dead})" in caplog.text


def test_an_old_folder_set_aside_by_a_dead_run_is_put_back(tmp_path: Path, caplog):
    """Killed between its two renames: the output is missing, the old one sits aside."""
    dead = _dead_pid()
    out = tmp_path / "onnx"
    aside = tmp_path / f".onnx.old-{dead}"
    aside.mkdir()
    (aside / "model.onnx").write_text("the old model")
    (tmp_path / f".onnx.tmp-{dead}").mkdir()  # its unfinished new folder
    with caplog.at_level(logging.WARNING, logger="common.writes"):
        check_target(out, force=False, folder=True)  # nothing there yet: no --force needed
        with pytest.raises(RuntimeError), staged_folder(out):
            raise RuntimeError("this run fails too")
    assert _names(tmp_path) == ["onnx"] and (out / "model.onnx").read_text() == "the old model"
    assert "put back" in caplog.text


@pytest.mark.parametrize("folder", [True, False])
def test_an_existing_output_needs_force(tmp_path: Path, folder: bool):
    target = tmp_path / "out"
    if folder:
        target.mkdir()
        (target / "x").write_text("x")
    else:
        target.write_text("x")
    with pytest.raises(UserError, match="pass --force to replace it"):
        check_target(target, force=False, folder=folder)
    check_target(target, force=True, folder=folder)
    with pytest.raises(UserError, match=f"exists and is a {'folder' if folder else 'file'}"):
        check_target(target, force=True, folder=not folder)


def test_a_place_under_a_file_is_refused_before_any_work(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=f"cannot create {blocker}/a/out: {blocker} is a file"):
        check_target(blocker / "a" / "out", force=False, folder=True)


DISK_FULL = """
import resource, sys
from pathlib import Path
from common.errors import UserError
from common.writes import staged_folder, write_text
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
root = Path(sys.argv[1])
try:
    if sys.argv[2] == "file":
        write_text(root / "out.txt", "x" * 1_000_000)
    elif sys.argv[2] == "folder":
        with staged_folder(root / "out") as tmp:
            (tmp / "weights.bin").write_bytes(b"x" * 1_000_000)
    else:  # a failure with no file at the limit: not the disk's fault
        with staged_folder(root / "out") as tmp:
            (tmp / "weights.bin").write_bytes(b"x" * 1_000)
            raise RuntimeError("a bug in the writer")
except UserError as e:
    print(e)
"""


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_disk_full_is_one_line_and_keeps_the_old_output(tmp_path: Path, kind: str):
    """RLIMIT_FSIZE makes writes past 64 KiB fail with EFBIG, as a full disk fails with
    ENOSPC (Python ignores SIGXFSZ, so the write returns the error)."""
    if kind == "file":
        (tmp_path / "out.txt").write_text("old")
    else:
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "old.txt").write_text("old")
    done = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(tmp_path), kind],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [
        f"could not write {tmp_path / ('out.txt' if kind == 'file' else 'out')} (File too large: "
        "this process may write files of 64 KiB at most); the existing one is kept; free some "
        "space or pass a place you can write"
    ]
    assert _names(tmp_path) == ["out.txt" if kind == "file" else "out"]
    kept = tmp_path / "out.txt" if kind == "file" else tmp_path / "out" / "old.txt"
    assert kept.read_text() == "old"


def test_a_failure_under_a_size_limit_that_no_file_reached_keeps_its_traceback(tmp_path: Path):
    """A file size limit alone is no evidence that the disk is to blame."""
    done = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(tmp_path), "bug"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "RuntimeError: a bug in the writer" in done.stderr
    assert _names(tmp_path) == []
