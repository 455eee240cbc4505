"""Dynamic int8 quantization for the CPU: the preset per instruction set, and the fp32 holdouts.

onnxruntime runs a file quantized with any x86 preset on any x86 CPU; the preset decides which
integer kernels it was shaped for, so by default it is this CPU's (`--target-cpu`). The avx2
preset gives each row of activations its own scale (export/quantize_rows.py); the others use
onnxruntime's quantizer, one scale per activation tensor.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from common.cpu import CpuFacts, int8_dot_flag
from export.quantize_rows import quantize_rows

ISAS = ("avx2", "avx512", "avx512_vnni", "arm64")

# Which MatMuls stay in fp32. BERT's feed-forward output projection reads GELU activations with
# a few very large channels; one int8 scale per tensor for those rows costs most of the error.
# Patterns on optimum's node names, e.g. /bert/encoder/layer.0/output/dense/MatMul (the
# attention block's own output projection is .../attention/output/dense/MatMul: not matched).
HOLDOUTS = {
    "none": None,
    "ffn-output": re.compile(r"/layer\.\d+/output/dense/MatMul$"),
    "ffn": re.compile(r"/layer\.\d+/(output|intermediate)/dense/MatMul$"),
}


# The embedding lookups stay fp32: quantized with one scale per table, they were the largest
# single source of error on the real model (largest probability gap 0.065 -> 0.034 with the
# feed-forward MatMuls held out, 2,000 real comments), and a lookup gains no speed from int8.
EMBEDDINGS = {"Gather", "EmbedLayerNormalization"}


def isa_for(cpu: CpuFacts) -> str:
    """The preset that fits a CPU: VNNI (AVX-512 or AVX) multiplies u8 by s8 without saturating."""
    if cpu.is_arm:
        return "arm64"
    if int8_dot_flag(cpu.flags):
        return "avx512_vnni"
    return "avx512" if "avx512f" in cpu.flags else "avx2"


def preset(isa: str, exclude: list[str]):
    """optimum's preset for `isa`, dynamic, per-channel weights.

    Each preset takes only the arguments it knows (avx512_vnni and arm64 have no reduce_range).
    avx512 without VNNI multiplies u8 by s8 in 16-bit pairs that can saturate, so its weights
    use 7 bits; the avx2 preset quantizes weights to u8, whose kernel widens to 32 bits first
    and needs no such cut.
    """
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    if isa not in ISAS:
        raise ValueError(f"unknown int8 preset {isa!r}")
    extra = {"reduce_range": True} if isa == "avx512" else {}
    return getattr(AutoQuantizationConfig, isa)(
        is_static=False, per_channel=True, nodes_to_exclude=exclude, **extra
    )


def held_out_nodes(model_path: Path, holdout: str) -> list[str]:
    """Names of the MatMul nodes that `holdout` keeps in fp32."""
    import onnx

    pattern = HOLDOUTS[holdout]
    if pattern is None:
        return []
    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and pattern.search(n.name)]


def quantize(out: Path, source: str, target: str, *, isa: str, holdout: str) -> tuple[Path, dict]:
    """Write `target` in `out`: `source` with its MatMuls in int8 except the holdouts.

    Operators as optimum's preset lists them (MatMul, Attention ...) but the embeddings, so a
    fused source (the optimized graph) gets its Attention nodes in int8 too (QAttention:
    projections in int8, attention scores in fp32). onnxruntime's quantizer does the work with
    the preset's settings; optimum's own wrapper cannot type the fused nodes. The avx2 preset
    is row-wise instead (`_quantize_rows`).
    """
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    exclude = held_out_nodes(out / source, holdout)
    if isa == "avx2":
        return _quantize_rows(out, source, target, holdout, exclude)
    config = preset(isa, exclude)
    fused = _fused(out / source)
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        made = Path(scratch) / target
        quantize_dynamic(
            out / source,
            made,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            weight_type=config.weights_dtype,
            op_types_to_quantize=[
                op for op in config.operators_to_quantize if op not in EMBEDDINGS
            ],
            nodes_to_exclude=exclude,
            extra_options={
                "WeightSymmetric": config.weights_symmetric,
                "ActivationSymmetric": config.activations_symmetric,
                # Fused nodes come from the com.microsoft domain, which shape inference cannot
                # type: their outputs are fp32, as every activation of these graphs.
                "DefaultTensorType": onnx.TensorProto.FLOAT,
            },
        )
        shutil.move(made, out / target)
    return out / target, {
        "source": source,
        "graph": "fused" if fused else "plain",
        "isa": isa,
        "per_channel": True,
        "reduce_range": bool(config.reduce_range),
        "weights": config.weights_dtype.name,
        "activation_scales": "per tensor",
        "fp32_holdout": holdout,
        "fp32_nodes": len(exclude),
    }


def _quantize_rows(out: Path, source: str, target: str, holdout: str, exclude: list[str]):
    """The avx2 preset: row-wise activation scales, u8 weights per column (no saturation on a
    CPU without VNNI). On the fused graph the Attention nodes keep their fp32 projections."""
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        made = Path(scratch) / target
        quantize_rows(out / source, made, exclude)
        shutil.move(made, out / target)
    return out / target, {
        "source": source,
        "graph": "fused" if _fused(out / target) else "plain",
        "isa": "avx2",
        "per_channel": True,
        "reduce_range": False,
        "weights": "QUInt8",
        "activation_scales": "per row",
        "fp32_holdout": holdout,
        "fp32_nodes": len(exclude),
    }


def _fused(path: Path) -> bool:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(n.op_type == "Attention" for n in graph.node)
