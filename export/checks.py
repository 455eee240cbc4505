"""Cheap checks before any model is loaded: the model folder, the opset, the optimizer; and the
plan: which variants an export tries, and which it leaves out and why (every variant this machine
can build and check by default, or those named with --variants; a named one that cannot be made
here is refused at once)."""

from __future__ import annotations

import logging
from pathlib import Path

from common.errors import UserError
from common.jsonfile import read_json
from common.variants import VARIANTS, Variant

log = logging.getLogger("export")

EVAL_HINT = "pass --eval-data with a labelled sample of your comments (2,000 rows or more)"
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


def plan(
    named: list[str] | None,
    flags: frozenset[str],
    *,
    cuda: bool,
    eval_data: bool,
    optimizer: str | None,
    without: tuple[str, ...] = (),
) -> tuple[dict[str, bool], dict[str, str]]:
    """{variant: named by the user} to try, in the table's order, and {variant: why} left out.

    `optimizer` is why onnxruntime's graph optimizer cannot take this model, or None.
    """
    tried, left_out = {"fp32": True}, {}
    for name, variant in VARIANTS.items():
        if name == "fp32":
            continue
        if name in without or (named is not None and name not in named):
            left_out[name] = "not named in --variants" if named else f"--no-{name}"
            continue
        why = cannot_make(variant, flags, cuda, eval_data, optimizer)
        if why is None:
            tried[name] = named is not None
        elif named is not None:
            raise UserError(f"--variants {name}: {why}")
        else:
            left_out[name] = why
            (log.warning if variant.calibrated else log.info)("%s left out: %s", name, why)
    return tried, left_out


def cannot_make(
    variant: Variant, flags: frozenset[str], cuda: bool, eval_data: bool, optimizer: str | None
) -> str | None:
    """Why `variant` cannot be built and checked on this machine, with what to do; or None."""
    if "cpu" not in variant.devices and not cuda:
        return (
            "its parity is checked on CUDA and onnxruntime cannot use CUDA here; export on a GPU "
            'machine (onnxruntime-gpu needs CUDA 13 and cuDNN 9: pip install "onnxruntime-gpu'
            '[cuda,cudnn]")'
        )
    if variant.needs and not any(f in flags for f in variant.needs):
        return (
            f"this CPU has none of {', '.join(variant.needs)}, so it cannot be checked here "
            "(OpenVINO would quietly run fp32); export on a CPU that has one"
        )
    if variant.calibrated and not eval_data:
        return f"it calibrates on --eval-data rows and none were given; {EVAL_HINT}"
    if variant.name in ("optimized", "fp16") and optimizer:
        return f"{optimizer}; leave it out of --variants"
    return None
