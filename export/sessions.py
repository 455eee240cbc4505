"""onnxruntime sessions on an explicit provider, refusing a silent fallback to the CPU."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from export.errors import UserError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def open_session(path: Path, provider: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # keep onnxruntime's warnings about unused fusions quiet
    session = ort.InferenceSession(str(path), options, providers=[PROVIDERS[provider]])
    if session.get_providers()[0] != PROVIDERS[provider]:
        raise UserError(
            f"onnxruntime fell back to {session.get_providers()[0]} for {path.name} "
            f"although {provider} was asked for; check the CUDA install"
        )
    return session


def cuda_usable() -> bool:
    """True when onnxruntime-gpu can really run on CUDA here (its provider list alone can lie)."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        return False  # no NVIDIA device: skip loading CUDA libraries just to fail noisily
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* pip packages, if installed
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 10)
    options = ort.SessionOptions()
    options.log_severity_level = 4
    ort.set_default_logger_severity(4)  # the fallback warning is expected here, not news
    try:
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CUDAExecutionProvider"]
        )
    except Exception:  # a missing libcudart raises onnxruntime's own error types
        return False
    finally:
        ort.set_default_logger_severity(2)
    return session.get_providers()[0] == "CUDAExecutionProvider"
