"""The `int8-static` variant: model.onnx quantized by NNCF with activation scales calibrated on
real comments, saved as OpenVINO IR. Static scales need no per-batch quantizing, and OpenVINO
fuses each quantized MatMul with its neighbours (speed per holdout: docs/results.md)."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from pathlib import Path

import numpy as np

from common.batching import TextTokenizer, batches, batching_for
from common.cpu import int8_dot_flag
from common.variants import VARIANTS
from export.quantize import HOLDOUTS as INT8_HOLDOUTS

STATIC_FILE = VARIANTS["int8-static"].file  # its weights in the .bin beside it

# Which MatMuls (OpenVINO's friendly names, as optimum names the ONNX nodes) stay out of int8,
# fastest first. With static scales the first encoder layer, which reads the embeddings'
# LayerNorm output, was the largest single source of error on a MiniLM trained on 10,000 real
# comments (largest gap 0.067 -> 0.051 with it held, 0.045 with the first two layers), while
# holding every feed-forward MatMul (two thirds of the arithmetic) still left 0.073
# (docs/variants.md). So the ladder mixes the layer holdouts with int8's feed-forward ones,
# ordered by the share of the arithmetic each keeps in floats (none, a sixth, a third, a third,
# two thirds); of the two that keep a third, ffn-output ran faster (304 rows/s against 262, in
# single runs).
HOLDOUTS = {
    "none": None,
    "first-layer": re.compile(r"/layer\.0/"),
    "ffn-output": INT8_HOLDOUTS["ffn-output"],
    "first-two-layers": re.compile(r"/layer\.[01]/"),
    "ffn": INT8_HOLDOUTS["ffn"],
}


def calibration_feeds(tokenizer: TextTokenizer, texts: list[str]) -> list[dict[str, np.ndarray]]:
    """Inputs for NNCF's statistics: the batches the scorer builds on the CPU (length-sorted,
    each padded to its longest), so the padding seen in calibration is the padding scored."""
    return [feed for _, feed in batches(tokenizer.tokenize(texts), batching_for("cpu"))]


def quantize_static(
    out: Path, source: str, feeds: list[dict], *, holdout: str, flags: frozenset[str]
) -> tuple[Path, dict]:
    """Write STATIC_FILE (+ .bin) in `out`: `source` in static int8 but the `holdout` MatMuls.
    The record says whether this CPU has non-saturating int8 dot products (VNNI, AMX): the scorer
    holds the file to that kind, as it strays further elsewhere (docs/variants.md)."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(out / source))
    names = {f.get_any_name() for f in model.inputs}
    feeds = [{k: v for k, v in f.items() if k in names} for f in feeds]
    pattern = HOLDOUTS[holdout]
    held = [op.get_friendly_name() for op in model.get_ops() if pattern and _matches(op, pattern)]
    # The logger's level, not nncf.set_log_level: that also sets every handler attached to
    # NNCF's logger, which may belong to the caller (pytest attaches its own and keeps them).
    logging.getLogger("nncf").setLevel(logging.ERROR)
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
