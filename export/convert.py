"""Export with optimum, derive the graph-optimized fp32 and fp16 (CUDA) variants, and make each
variant of common/variants.py in the export folder: one build function each, which takes the
folder's facts and an fp32 holdout (int8 tries quantize.HOLDOUTS and int8-static
quantize_static.HOLDOUTS in order until one is within its limits, the fastest first; the others
build once) and returns the file and what to record."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from common.variants import VARIANTS
from common.writes import writing
from export import quantize, quantize_static
from export.cls_only import cls_only_last_layer

log = logging.getLogger("export")


def export_onnx(model_dir: Path, out: Path, opset: int) -> bool:
    """optimum's exporter: model.onnx with dynamic batch and sequence axes, config, tokenizer;
    True where the last layer is traced for the [CLS] position only (export/cls_only.py).

    The model is traced with transformers' eager attention, not its default SDPA: torch's ONNX
    form of SDPA scales queries and keys apart (a Sqrt and a Mul each, per layer) around extra
    transposes, and OpenVINO ran the eager graph's bf16 1.07x faster, 1.19x with its attention
    kernels off (docs/variants.md); onnxruntime fuses either into the same Attention operator.
    """
    from optimum.exporters.onnx import onnx_export_from_model
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, attn_implementation="eager", local_files_only=True
    ).eval()
    cls_only = cls_only_last_layer(model)
    with writing(out / VARIANTS["fp32"].file):
        onnx_export_from_model(
            model,
            output=out,
            task="text-classification",
            opset=opset,
            device="cpu",
            do_validation=False,
        )
    return cls_only


def optimize(out: Path, *, for_gpu: bool, fp16: bool) -> Path:
    """onnxruntime's transformer fusions (attention, skip-layer-norm, bias-GELU) via ORTOptimizer.

    Level 2 keeps the graph provider-neutral (level 99 adds CPU-only layout ops). The fp16 graph
    keeps fp32 inputs and outputs, so the scorer feeds it the same int64 ids as the others.
    """
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import OptimizationConfig

    config = OptimizationConfig(
        optimization_level=2, optimize_for_gpu=for_gpu, fp16=fp16, enable_gelu_approximation=False
    )
    name = "fp16" if fp16 else "optimized"
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        optimizer = ORTOptimizer.from_pretrained(out, file_names=[VARIANTS["fp32"].file])
        optimizer.optimize(config, save_dir=scratch, file_suffix=name)
        target = out / VARIANTS[name].file
        shutil.move(Path(scratch) / f"model_{name}.onnx", target)
    log.info("fused operators in %s: %s", target.name, ORTOptimizer.get_fused_operators(target))
    return target


@dataclass
class Folder:
    """What the build functions need: the staging folder and the machine's facts."""

    path: Path
    isa: str  # onnxruntime int8's preset (--target-cpu)
    flags: frozenset[str]  # this CPU's: int8-static records whether it saturates here
    calibration: list[dict] = field(default_factory=list)  # int8-static's input batches
    written: set[str] = field(default_factory=set)  # variants kept so far


def fp32(folder: Folder, holdout: str | None) -> tuple[Path, dict]:
    return folder.path / VARIANTS["fp32"].file, {}


def optimized(folder: Folder, holdout: str | None) -> tuple[Path, dict]:
    return optimize(folder.path, for_gpu=False, fp16=False), {}


def fp16(folder: Folder, holdout: str | None) -> tuple[Path, dict]:
    path = optimize(folder.path, for_gpu=True, fp16=True)
    return path, {"io": "int64 inputs, float32 logits (fp16 inside)"}


def int8(folder: Folder, holdout: str | None) -> tuple[Path, dict]:
    """The fused graph when optimized was written (its attention runs in int8 too: faster),
    else the plain one."""
    source = VARIANTS["optimized" if "optimized" in folder.written else "fp32"].file
    target = VARIANTS["int8"].file
    return quantize.quantize(folder.path, source, target, isa=folder.isa, holdout=holdout)


def bf16(folder: Folder, holdout: str | None) -> tuple[Path, dict]:
    return folder.path / VARIANTS["bf16"].file, {}


def int8_static(folder: Folder, holdout: str | None) -> tuple[Path, dict]:
    return quantize_static.quantize_static(
        folder.path, VARIANTS["fp32"].file, folder.calibration, holdout=holdout, flags=folder.flags
    )


BUILDERS = {
    "fp32": fp32,
    "optimized": optimized,
    "fp16": fp16,
    "int8": int8,
    "bf16": bf16,
    "int8-static": int8_static,
}


def holdouts(name: str) -> tuple[str | None, ...]:
    """The fp32 holdouts to try for `name`, fastest first."""
    if name == "int8-static":
        return tuple(quantize_static.HOLDOUTS)
    return tuple(quantize.HOLDOUTS) if VARIANTS[name].arith == "int8" else (None,)
