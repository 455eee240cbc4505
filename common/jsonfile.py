"""Read a JSON object from an artifact folder; a corrupt file is a one-line UserError."""

from __future__ import annotations

import json
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
