"""Cheap checks before any model is loaded: the model folder, the opset, the optimizer."""

from __future__ import annotations

from pathlib import Path

from common.errors import UserError
from common.jsonfile import read_json

MIN_OPSET = 14  # the exporter's scaled-dot-product attention needs opset 14 or newer


def check_model_dir(model_dir: Path) -> dict:
    """The training stage's folder: a config with labels and weights; returns the config."""
    if not model_dir.is_dir():
        raise UserError(
            f"{model_dir} is not a folder; pass --model with the output of "
            "python -m train (artifacts/model by default)"
        )
    config_path = model_dir / "config.json"
    weights = list(model_dir.glob("*.safetensors")) + list(model_dir.glob("pytorch_model*.bin"))
    if not config_path.is_file() or not weights:
        raise UserError(
            f"{model_dir} is not a saved model (no config.json or weights); pass "
            "--model with the output of python -m train"
        )
    if not (model_dir / "tokenizer.json").is_file():
        raise UserError(
            f"{model_dir} has no tokenizer.json (a fast tokenizer, which the scorer needs); "
            "pass --model with the output of python -m train"
        )
    config = read_json(config_path, "pass --model with the output of python -m train")
    if config.get("problem_type") != "multi_label_classification" or not config.get("id2label"):
        raise UserError(
            f"{model_dir}/config.json is not a multi-label classifier (no id2label "
            "or problem_type); export a folder written by python -m train"
        )
    return config


def optimizer_problem(config: dict) -> str | None:
    """Why onnxruntime's transformer optimizer (the optimized and fp16 variants) cannot take
    this architecture, or None: optimum's own rule, asked before anything is exported."""
    from optimum.onnxruntime.configuration import OptimizationConfig
    from optimum.onnxruntime.utils import ORTConfigManager

    model_type = config.get("model_type", "unknown")
    try:
        ORTConfigManager.check_optimization_supported_model(model_type, OptimizationConfig())
    except NotImplementedError:
        return f"onnxruntime's graph optimizer does not support {model_type} models"
    return None


def check_opset(opset: int) -> None:
    """Refuse an opset below the exporter's minimum or above what this onnxruntime can run."""
    newest = min(newest_runnable_opset(), newest_exportable_opset())
    if not MIN_OPSET <= opset <= newest:
        raise UserError(
            f"--opset {opset} is outside what works here ({MIN_OPSET} to {newest} "
            "for this exporter and onnxruntime); pass --opset 17"
        )


def newest_exportable_opset() -> int:
    """optimum drives torch's TorchScript exporter (dynamo=False), which stops at its own max."""
    from torch.onnx import _constants

    return getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20)


def newest_runnable_opset() -> int:
    """Ask onnxruntime itself: load a one-node graph at each opset until it refuses."""
    import onnx
    import onnxruntime as ort

    from common.sessions import probe_model

    newest = MIN_OPSET - 1
    for opset in range(MIN_OPSET, onnx.defs.onnx_opset_version() + 1):
        try:
            ort.InferenceSession(probe_model(opset), providers=["CPUExecutionProvider"])
        except Exception:  # onnxruntime raises its own Fail/InvalidGraph types: any is a "no"
            break
        newest = opset
    return newest
