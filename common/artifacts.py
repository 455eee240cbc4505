"""What passes between stages by name: the ONNX variant files, and a folder's label list."""

from __future__ import annotations

from pathlib import Path

from common.errors import UserError
from common.jsonfile import read_json

# Written by export (its export.json lists the ones it kept under "variants"), read by score.
VARIANT_FILES = {
    "fp32": "model.onnx",
    "optimized": "model_optimized.onnx",
    "fp16": "model_fp16.onnx",
    "int8": "model_int8.onnx",
    "bf16": "model.onnx",  # the same file, run by OpenVINO in bf16 (common/openvino_session.py)
    "int8-static": "model_int8_static.xml",  # OpenVINO IR, weights in model_int8_static.bin
}
OPENVINO_VARIANTS = {"bf16", "int8-static"}


def config_labels(folder: Path, fix: str) -> list[str]:
    """The label names of a model folder (train's or export's), in `id2label` order."""
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"{folder} has no config.json; {fix}")
    id2label = read_json(path, fix).get("id2label") or {}
    if not id2label:
        raise UserError(f"{path} has no id2label; {fix}")
    return [id2label[str(i)] for i in range(len(id2label))]
