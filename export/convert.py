"""Export with optimum and derive the variants: graph-optimized fp32, fp16 (CUDA) and int8 (CPU)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("export")

VARIANT_FILES = {
    "fp32": "model.onnx",
    "optimized": "model_optimized.onnx",
    "fp16": "model_fp16.onnx",
    "int8": "model_int8.onnx",
}


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
    return out / VARIANT_FILES["fp32"]


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
        optimizer = ORTOptimizer.from_pretrained(out, file_names=[VARIANT_FILES["fp32"]])
        optimizer.optimize(config, save_dir=scratch, file_suffix=name)
        target = out / VARIANT_FILES[name]
        shutil.move(Path(scratch) / f"model_{name}.onnx", target)
    log.info("fused operators in %s: %s", target.name, ORTOptimizer.get_fused_operators(target))
    return target


def quantize_int8(out: Path, source: str) -> tuple[Path, dict]:
    """Dynamic int8 quantization of the weights (activations quantized at run time) for CPU."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    isa = cpu_isa()
    # avx2 and plain avx512 chips can saturate in u8*s8 products: 7-bit weights avoid that.
    config = getattr(AutoQuantizationConfig, isa)(
        is_static=False,
        per_channel=True,
        **({} if isa == "arm64" else {"reduce_range": isa != "avx512_vnni"}),
    )
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        quantizer = ORTQuantizer.from_pretrained(out, file_name=source)
        quantizer.quantize(config, save_dir=scratch, file_suffix="int8")
        made = next(Path(scratch).glob("*_int8.onnx"))
        target = out / VARIANT_FILES["int8"]
        shutil.move(made, target)
    return target, {
        "source": source,
        "isa": isa,
        "per_channel": True,
        "reduce_range": bool(config.reduce_range),
    }


def cpu_isa() -> str:
    """The quantization preset that fits this CPU (the int8 file runs best on the same kind)."""
    import platform

    if platform.machine().lower() in {"aarch64", "arm64"}:
        return "arm64"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "avx2"
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"
