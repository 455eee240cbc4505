"""Write the output folder under a temporary name and move it into place only on success."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from train.errors import UserError


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse to replace a folder with content unless --force; checked before any work."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; pass another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"{out} already exists and is not empty; pass --force to replace it")


@contextlib.contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `out`, on failure it is removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
