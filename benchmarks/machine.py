"""What the figures were measured on: libraries, CPU or GPU name, thread counts, competing load."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from common.cpu import (  # noqa: F401
    _slug,
    cpu_flags,
    cpu_model,
    cpu_slug,
    isa_tag,
    key_flags,
    usable_cores,
)


def describe(device: str, threads: int) -> dict:
    import numpy
    import onnxruntime
    import polars
    import torch
    import transformers

    env = {
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "openvino": _version("openvino"),  # a GPU machine may lack it
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
        "polars": polars.__version__,
        "cpu": cpu_model(),
        "cpu_flags": key_flags(cpu_flags()),
        "cores": usable_cores(),
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "busy_before": busy_cpus(),
        "commit": code_commit(),
    }
    if device == "cuda":
        env.update(gpu_info(), torch_cuda=torch.version.cuda)
        env["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    return env


def code_commit() -> str:
    """The project's git commit, "... with uncommitted changes" where tracked files differ from
    it, or "unknown" outside a git checkout (an installed copy): every figure names its code."""
    root = Path(__file__).resolve().parent.parent
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        return "unknown"

    def ask(*args: str) -> str:
        command = [git, "-C", str(root), *args]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit, changes = ask("rev-parse", "--short", "HEAD"), ask("status", "--porcelain", "-uno")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" with uncommitted changes" if changes else "")


def busy_cpus(seconds: float = 1.0) -> dict:
    """CPU in use by anything while this process waits: another job skews CPU figures."""
    import psutil

    percent = psutil.cpu_percent(interval=seconds)
    return {
        "percent_of_all_cores": percent,
        "cores_busy": round(percent / 100 * (os.cpu_count() or 1), 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def gpu_info() -> dict:
    """The card's name from nvidia-smi (the name every GPU figure must carry) and from torch."""
    import torch

    info = {"gpu_torch": torch.cuda.get_device_name(0)}
    if shutil.which("nvidia-smi"):
        query = "--query-gpu=name,driver_version,memory.total"
        cmd = ["nvidia-smi", query, "--format=csv,noheader"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        name, driver, memory = (part.strip() for part in out.splitlines()[0].split(","))
        info.update(gpu=name, gpu_driver=driver, gpu_memory=memory)
    else:
        info["gpu"] = info["gpu_torch"]
    return info


def results_dir_name(env: dict) -> str:
    """The CPU's name and key ISA (`amd-epyc-avx512-vnni-bf16`), or the card's name on CUDA
    (`nvidia-h100-80gb-hbm3`): runs on different machines sit side by side."""
    if env["device"] == "cpu":
        return cpu_slug(env["cpu"], frozenset(env["cpu_flags"]))
    return _slug(env["gpu"])


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"
