"""Run one step of the visit in its own process group under a time limit, and record its exit
code, seconds, peak host memory and peak GPU memory (nvidia-smi, sampled) as one JSON row."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

SAMPLE_S = 0.5
GRACE_S = 10  # after SIGINT at the limit, before SIGKILL


class GpuMemory:
    """Peak `memory.used` of GPU 0 while the step runs; None where there is no nvidia-smi."""

    def __init__(self) -> None:
        self.peak: int | None = None
        self.tool = shutil.which("nvidia-smi")
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> GpuMemory:
        if self.tool:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def _sample(self) -> None:
        query = [self.tool, "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
        while not self.done.wait(SAMPLE_S):
            out = subprocess.run(query, capture_output=True, text=True, check=False).stdout.split()
            if out and out[0].isdigit():
                self.peak = max(self.peak or 0, int(out[0]))


def run_step(name: str, limit_s: float, log: Path, command: list[str], row_path: Path) -> int:
    """Run `command` with stdout and stderr into `log`; write the row; return the exit code.

    A step past its limit gets SIGINT (the stages clean up their temporary outputs on it), then
    SIGKILL, and exit code 124, as `timeout` reports it.
    """
    started = time.monotonic()
    with GpuMemory() as gpu, open(log, "w") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            rc = _stop(proc)
    row = {
        "step": name,
        "rc": rc,
        "seconds": round(time.monotonic() - started, 1),
        "limit_s": limit_s,
        "peak_host_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "peak_gpu_mib": gpu.peak,
        "log": f"logs/{log.name}",
    }
    write_row(row_path, row)
    return rc


def _stop(proc: subprocess.Popen) -> int:
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return 124


def write_row(path: Path, row: dict) -> None:
    """One step's row, written under a temporary name and renamed (a rerun replaces it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row) + "\n")
    os.replace(tmp, path)
