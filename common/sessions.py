"""onnxruntime sessions on an explicit provider, refusing onnxruntime's silent CPU fallback, and
the probe that says whether CUDA really works here (export, score and the benchmarks use both)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from common.cpu import cpu_flags
from common.errors import UserError
from common.openvino_session import OpenVinoSession, precision_for, snippets_on
from common.variants import VARIANTS

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
# The installed onnxruntime-gpu wheel is built for CUDA 13 and cuDNN 9; its own extras bring
# them as pip packages (a CUDA 13 build of torch, imported first, brings them too).
CUDA_FIX = (
    'onnxruntime-gpu needs CUDA 13 and cuDNN 9: pip install "onnxruntime-gpu[cuda,cudnn]" '
    "(or a CUDA 13 build of torch)"
)


def open_variant(
    variant: str,
    path: Path,
    provider: str,
    threads: int | None = None,
    cpu_flag: str = "--provider cpu",
    flags: frozenset[str] | None = None,
    streams: int = 1,
):
    """onnxruntime, or OpenVINO on the CPU for the variants it runs (bf16, int8-static);
    `flags` (None: this CPU's) set OpenVINO's precision and kernels, `streams` how many batches
    its `run_batches` keeps in flight."""
    if VARIANTS[variant].runtime == "openvino":
        flags = cpu_flags() if flags is None else flags
        precision = precision_for(variant, flags)
        return OpenVinoSession(path, precision, threads, snippets_on(flags), streams)
    return open_session(path, provider, threads, cpu_flag)


def open_session(
    path: Path, provider: str, threads: int | None = None, cpu_flag: str = "--provider cpu"
) -> ort.InferenceSession:
    """A session on `provider` only; `cpu_flag` is the caller's flag that avoids CUDA."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # onnxruntime's notes about unused fusions are not news
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=[PROVIDERS[provider]])
    # onnxruntime falls back to the CPU without raising when CUDA cannot start: look.
    if session.get_providers()[0] != PROVIDERS[provider]:
        raise UserError(
            f"onnxruntime fell back to {session.get_providers()[0]} for {path.name} although "
            f"{provider} was asked for; {CUDA_FIX}, or pass {cpu_flag}"
        )
    return session


def cuda_usable() -> bool:
    """True when onnxruntime-gpu can really run on CUDA here (its provider list alone can lie)."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        return False  # no NVIDIA device: skip loading CUDA libraries just to fail noisily
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* pip packages, without torch
    model = probe_model(17)
    options = ort.SessionOptions()
    options.log_severity_level = 4
    ort.set_default_logger_severity(4)  # the fallback warning is expected here, not news
    try:
        session = ort.InferenceSession(model, options, providers=["CUDAExecutionProvider"])
    except Exception:  # a missing libcudart raises onnxruntime's own error types
        return False
    finally:
        ort.set_default_logger_severity(2)
    return session.get_providers()[0] == "CUDAExecutionProvider"


def probe_model(opset: int) -> bytes:
    """A one-node ONNX graph (Identity) at `opset`: loading it asks onnxruntime what it can run."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)  # the newest IR this onnxruntime reads
    return model.SerializeToString()
