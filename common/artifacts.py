"""A model folder's label list, as train and export write it (variant files: common/variants.py)."""

from __future__ import annotations

from pathlib import Path

from common.errors import UserError
from common.jsonfile import read_json


def config_labels(folder: Path, fix: str) -> list[str]:
    """The label names of a model folder (train's or export's), in `id2label` order."""
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"{folder} has no config.json; {fix}")
    id2label = read_json(path, fix).get("id2label") or {}
    if not id2label:
        raise UserError(f"{path} has no id2label; {fix}")
    return [id2label[str(i)] for i in range(len(id2label))]
