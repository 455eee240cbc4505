"""JSON in artifact folders: a corrupt file read is a one-line UserError; NaN is written as null;
and a model folder's label list, as train and export write it."""

from __future__ import annotations

import json
import math
from pathlib import Path

from common.errors import UserError


def read_json(path: Path, fix: str) -> dict:
    """The JSON object in `path`; anything else (bad JSON, not UTF-8, not an object) names the
    file, the problem and `fix`."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        problem = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path} is not valid JSON ({problem}); {fix}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} holds a JSON {type(value).__name__}, not an object; {fix}")
    return value


def dump_json(obj, path: Path) -> None:
    """JSON with NaN written as null, since NaN is not valid JSON."""
    path.write_text(json.dumps(_clean(obj), indent=2) + "\n")


def _clean(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def config_labels(folder: Path, fix: str) -> list[str]:
    """The label names of a model folder (train's or export's), in `id2label` order."""
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"{folder} has no config.json; {fix}")
    id2label = read_json(path, fix).get("id2label") or {}
    if not id2label:
        raise UserError(f"{path} has no id2label; {fix}")
    return [id2label[str(i)] for i in range(len(id2label))]
