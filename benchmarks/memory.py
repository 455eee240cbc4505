"""`python -m benchmarks memory`: the scorer's peak memory on files of growing size.

For each row count, a CSV of generated comments is streamed into a temporary folder and scored
by a real `python -m score` process; that process's peak resident set (its own VmHWM, which it
writes at exit; wait4's ru_maxrss where /proc is absent) is recorded with its rows, time,
rows/s and the variant it used. The scorer reads, sorts and writes in chunks, so its memory
should not grow with the file: the goal is under 1 GiB at every count.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from benchmarks import machine
from benchmarks.texts import generated_texts
from common.errors import UserError
from common.writes import atomic_file, check_writable, write_text
from score.progress import METADATA_KEY

log = logging.getLogger("benchmarks")

GOAL_MIB = 1024
# Free disk the memory command needs per row of its largest count: ~400 bytes of CSV (the
# generated comments' lengths follow real ones) and the scores (~20 bytes) twice over while the
# scorer assembles its chunks, with room to spare.
BYTES_PER_ROW = 500
CHUNK = 100_000  # rows generated and written at once: the CSV is never held whole
POOL = 20_000  # distinct generated comments, drawn at random for each row (making each is slow)
# `python -m score`, run as -m runs it, that writes its own peak RSS (VmHWM, KiB) to PEAK_FILE at
# exit. wait4's ru_maxrss alone would not do: it counts the memory of the process that forked
# the child until the exec (a benchmark or pytest process holding torch reads as a 1 GiB scorer).
PEAK_LAUNCHER = """
import atexit, os, runpy
def peak():
    with open('/proc/self/status') as f, open(os.environ['PEAK_FILE'], 'w') as out:
        out.write(next(line.split()[1] for line in f if line.startswith('VmHWM:')))
if os.path.exists('/proc/self/status'):
    atexit.register(peak)
runpy.run_module('score', run_name='__main__', alter_sys=True)
"""
SUMMARY = re.compile(r"scored (\d+) rows in ([\d.]+) s \(([\d.]+) rows/s\)")


def run_memory(*, onnx_dir: Path, row_counts: list[int], variant: str, out: Path, seed: int):
    """Score a generated CSV of each row count; write results.json and report.md under
    out/<cpu>/memory/ and return the record."""
    if not (onnx_dir / "export.json").is_file():
        raise UserError(
            f"{onnx_dir} has no export.json; pass --onnx with the output of python -m export"
        )
    env = _machine()
    folder = out / machine.results_dir_name(env) / "memory"
    check_writable(folder, "--out")  # before the long runs, not after
    with tempfile.TemporaryDirectory(prefix="benchmarks-memory-") as tmp:
        _check_space(Path(tmp), max(row_counts))
        runs = [_measure(Path(tmp), onnx_dir, rows, variant, seed) for rows in row_counts]
    env["busy_after"] = machine.busy_cpus()
    settings = {"onnx_dir": onnx_dir.resolve().name, "row_counts": row_counts}
    record = {"settings": settings | {"variant": variant, "seed": seed}, "env": env}
    record |= {"goal_mib": GOAL_MIB, "runs": runs, "written": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "results.json", json.dumps(record, indent=2) + "\n")
    write_text(folder / "report.md", markdown(record))
    log.info("wrote %s", folder)
    return record


def _check_space(folder: Path, rows: int) -> None:
    """Refuse a count whose CSV and scores would not fit, before writing any of it."""
    need, free = rows * BYTES_PER_ROW, shutil.disk_usage(folder).free
    if free < need:
        raise UserError(
            f"{rows:,} rows need about {need / 1e9:.1f} GB free in {folder.parent} for the CSV "
            f"and its scores, and {free / 1e9:.1f} GB is free there; free some space, pass "
            "smaller --row-counts, or set TMPDIR to a folder on a bigger disk"
        )


def _measure(tmp: Path, onnx_dir: Path, rows: int, variant: str, seed: int) -> dict:
    csv = tmp / f"comments-{rows}.csv"
    started = time.perf_counter()
    write_comments(csv, rows, seed)
    size = csv.stat().st_size
    log.info(
        "generated %s rows (%.0f MB) in %.0f s",
        f"{rows:,}",
        size / 1e6,
        time.perf_counter() - started,
    )
    run = score_in_child(csv, tmp / f"scores-{rows}.parquet", onnx_dir, variant)
    if run["rows"] != rows:
        raise RuntimeError(f"python -m score wrote {run['rows']} rows of {rows}: a scorer bug")
    run |= {"csv_bytes": size, "goal_met": run["peak_rss_mib"] < GOAL_MIB}
    log.info(
        "%s rows: peak RSS %.0f MiB, %.0f rows/s, variant %s",
        f"{rows:,}", run["peak_rss_mib"], run["rows_per_s"], run["variant"],
    )  # fmt: skip
    csv.unlink()
    return run


def write_comments(path: Path, rows: int, seed: int) -> None:
    """An (id, comment_text) CSV of `rows` generated comments, written CHUNK rows at a time."""
    rng = np.random.default_rng(seed)
    pool = np.asarray(generated_texts(min(POOL, rows), seed), dtype=object)
    with atomic_file(path) as tmp, open(tmp, "wb") as f:  # a full disk: the one-line error
        for start in range(0, rows, CHUNK):
            count = min(CHUNK, rows - start)
            frame = pl.DataFrame(
                {
                    "id": [f"r{i}" for i in range(start, start + count)],
                    "comment_text": pool[rng.integers(0, len(pool), count)].tolist(),
                }
            )
            frame.write_csv(f, include_header=start == 0)


def score_in_child(csv: Path, output: Path, onnx_dir: Path, variant: str) -> dict:
    """`python -m score` on the CPU in a child process: its peak RSS, the rows it wrote, its own
    seconds and rows/s (from the session's start), the whole process's seconds, its variant."""
    cmd = [sys.executable, "-c", PEAK_LAUNCHER, str(csv), str(output), "--model", str(onnx_dir)]
    cmd += ["--variant", variant, "--provider", "cpu", "--quiet"]
    peak_file = output.with_suffix(".peak")
    with (
        open(output.with_suffix(".out"), "w+") as out,
        open(output.with_suffix(".err"), "w+") as err,
    ):
        started = time.perf_counter()
        env = os.environ | {"PEAK_FILE": str(peak_file)}
        child = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        try:
            _, status, usage = os.wait4(child.pid, 0)  # its rusage: Popen.wait gives none
        except BaseException:
            child.kill()
            child.wait()
            raise
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read().strip().splitlines()
    if child.returncode:
        why = stderr[-1] if stderr else f"exit code {child.returncode}"
        raise UserError(f"python -m score failed on {csv.name}: {why}")
    said = SUMMARY.search(stdout)
    if said is None:
        raise RuntimeError(f"python -m score printed no summary line the benchmark knows: {stdout}")
    made_by = json.loads(pq.read_schema(output).metadata[METADATA_KEY])
    rows = pq.ParquetFile(output).metadata.num_rows
    output.unlink()
    kib = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, KiB on Linux
    return {
        "rows": rows,
        "variant": made_by["variant"],
        "precision": made_by["precision"],
        "peak_rss_mib": round(_peak_kib(peak_file, usage.ru_maxrss * kib // 1024) / 1024, 1),
        "seconds": float(said[2]),
        "rows_per_s": float(said[3]),
        "process_seconds": round(wall, 1),
    }


def _peak_kib(peak_file: Path, fallback_kib: int) -> int:
    """The child's own peak (VmHWM) where /proc has it, else wait4's figure."""
    if not peak_file.exists():
        return fallback_kib
    kib = int(peak_file.read_text())
    peak_file.unlink()
    return kib


def _machine() -> dict:
    env = machine.describe("cpu", machine.usable_cores())
    pages = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return env | {"memory_gib": round(pages / 2**30, 1)}


def markdown(record: dict) -> str:
    s, env = record["settings"], record["env"]
    counts = ",".join(str(n) for n in s["row_counts"])
    busy = [env["busy_before"]["cores_busy"], env["busy_after"]["cores_busy"]]
    lines = [
        f"# Scorer memory on {env['cpu']}",
        "",
        f"Written {record['written']} by `python -m benchmarks memory --onnx {s['onnx_dir']} "
        f"--row-counts {counts} --variant {s['variant']} --seed {s['seed']}`, at commit "
        f"{env.get('commit', 'unknown')}.",
        "",
        "Each count: a CSV of generated comments (lengths as real comments'), scored by "
        "`python -m score --provider cpu` in its own process. Peak RSS: that process's largest "
        "resident set (VmHWM, written by the scorer itself at exit). rows/s: the scorer's own, "
        "from the model's session to the output written; process s: the whole process, "
        "start-up included. "
        f"Goal: peak RSS under {record['goal_mib'] // 1024} GiB at every count.",
        "",
        "| rows | variant | peak RSS MiB | rows/s | process s | goal < 1 GiB |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for r in record["runs"]:
        lines.append(
            f"| {r['rows']:,} | {r['variant']} ({r['precision']}) | {r['peak_rss_mib']:,.0f} "
            f"| {r['rows_per_s']:,.0f} | {r['process_seconds']:,.0f} "
            f"| {'met' if r['goal_met'] else '**missed**'} |"
        )
    return "\n".join(
        [
            *lines,
            "",
            f"Machine: {env['cpu']}, {env['cores']} usable cores "
            f"({', '.join(env['cpu_flags'])}), {env['memory_gib']} GiB of memory; other work "
            f"kept {busy[0]} / {busy[1]} cores busy before / after. Versions: python "
            f"{env['python']}, onnxruntime {env['onnxruntime']}, OpenVINO {env['openvino']}, "
            f"polars {env['polars']}.",
            "",
        ]
    )


def summary(record: dict) -> str:
    """The stdout result: one line per count."""
    return "\n".join(
        f"{r['rows']:>12,} rows  {r['variant']:<11} peak RSS {r['peak_rss_mib']:>7,.0f} MiB  "
        f"{r['rows_per_s']:>9,.0f} rows/s  goal < 1 GiB {'met' if r['goal_met'] else 'MISSED'}"
        for r in record["runs"]
    )
