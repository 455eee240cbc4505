"""Static int8 for OpenVINO: model.onnx quantized by NNCF with activation scales calibrated on
real comments, saved as OpenVINO IR (the `int8-static` variant).

Static scales need no per-batch quantizing of activations, and OpenVINO fuses each quantized
MatMul with its neighbours; the operators left in float run in bf16 where the CPU has bf16
hardware. On Zen 4 (2 threads, real comments, model only) it ran 697 rows/s with the
feed-forward output projections held out (what export kept for the real model), 616 with all
feed-forward MatMuls held out, against 535 for bf16, 254 for onnxruntime's dynamic int8 and 334
for PyTorch's bf16 autocast; all-int8 ran 831 but strayed by 0.099 (docs/variants.md).
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import numpy as np

from common.batching import CPU_BATCH_SIZE, TextTokenizer, batches
from common.cpu import int8_dot_flag
from common.variants import VARIANTS
from export.quantize import HOLDOUTS

STATIC_FILE = VARIANTS["int8-static"].file  # its weights in the .bin beside it


def calibration_feeds(tokenizer: TextTokenizer, texts: list[str]) -> list[dict[str, np.ndarray]]:
    """Inputs for NNCF's statistics: the batches the scorer builds on the CPU (length-sorted,
    each padded to its longest), so the padding seen in calibration is the padding scored."""
    return [feed for _, feed in batches(tokenizer.tokenize(texts), CPU_BATCH_SIZE)]


def quantize_static(
    out: Path, source: str, feeds: list[dict], *, holdout: str, flags: frozenset[str]
) -> tuple[Path, dict]:
    """Write STATIC_FILE (+ .bin) in `out`: `source` in static int8 but the `holdout` MatMuls.

    The record says whether this CPU (`flags`), where the variant is checked, has int8 dot
    products that do not saturate: without VNNI or AMX OpenVINO's u8 x s8 products go through
    16-bit pairs, and the same file strays further (emulated AVX2 on Zen 4, real model: max gap
    0.068 and p99 0.037 against 0.047 and 0.014), so the scorer holds it to the kind it was
    checked on.
    """
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(out / source))
    names = {f.get_any_name() for f in model.inputs}
    feeds = [{k: v for k, v in f.items() if k in names} for f in feeds]
    pattern = HOLDOUTS[holdout]
    held = [op.get_friendly_name() for op in model.get_ops() if pattern and _matches(op, pattern)]
    nncf.set_log_level(logging.ERROR)
    # NNCF draws its progress bars on stdout with rich; the export logs its own lines instead.
    with contextlib.redirect_stdout(io.StringIO()):
        quantized = nncf.quantize(
            model,
            nncf.Dataset(feeds),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(feeds),
            ignored_scope=nncf.IgnoredScope(names=held) if held else None,
        )
    ov.save_model(quantized, str(out / STATIC_FILE), compress_to_fp16=False)
    return out / STATIC_FILE, {
        "source": source,
        "calibration_texts": sum(len(f["input_ids"]) for f in feeds),
        "fp32_holdout": holdout,
        "fp32_nodes": len(held),
        "int8_dot_products": int8_dot_flag(flags) is not None,
    }


def _matches(op, pattern) -> bool:
    return op.get_type_name() == "MatMul" and pattern.search(op.get_friendly_name()) is not None
