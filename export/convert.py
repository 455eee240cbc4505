"""Export with optimum and derive the graph-optimized fp32 and fp16 (CUDA) variants."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from common.variants import VARIANTS

log = logging.getLogger("export")


def export_onnx(model_dir: Path, out: Path, opset: int) -> Path:
    """optimum's exporter: model.onnx with dynamic batch and sequence axes, config, tokenizer."""
    from optimum.exporters.onnx import main_export

    main_export(
        str(model_dir),
        output=out,
        task="text-classification",
        opset=opset,
        device="cpu",
        do_validation=False,
        local_files_only=True,
    )
    return out / VARIANTS["fp32"].file


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
