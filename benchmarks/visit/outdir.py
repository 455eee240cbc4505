"""The device tool's rules for what comes back from $OUT: at most 8 files, each under 16 MiB and
64 MiB together, at most 2 folders down, names of letters, digits, '.', '_' and '-' only."""

from __future__ import annotations

import re
from pathlib import Path

MAX_FILES = 8
MAX_FILE_BYTES = 16 * 2**20
MAX_TOTAL_BYTES = 64 * 2**20
MAX_FOLDERS_DOWN = 2
NAME = re.compile(r"[A-Za-z0-9._-]+")


def check_out(out: Path) -> list[str]:
    """Every way in which `out` breaks the rules (empty when everything would come back)."""
    problems = []
    files = sorted(p for p in out.rglob("*") if not p.is_dir())
    if len(files) > MAX_FILES:
        problems.append(f"{len(files)} files under $OUT, at most {MAX_FILES} come back")
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if any(not NAME.fullmatch(part) for part in rel.parts):
            problems.append(f"{rel}: a name other than letters, digits, '.', '_' and '-'")
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            problems.append(f"{rel}: not a plain file or folder")
        elif path.is_file() and len(rel.parts) - 1 > MAX_FOLDERS_DOWN:
            problems.append(f"{rel}: more than {MAX_FOLDERS_DOWN} folders down")
        elif path.is_file() and path.stat().st_size >= MAX_FILE_BYTES:
            problems.append(f"{rel}: {path.stat().st_size} bytes, each file must be under 16 MiB")
    total = sum(p.stat().st_size for p in files if p.is_file() and not p.is_symlink())
    if total > MAX_TOTAL_BYTES:
        problems.append(f"{total} bytes under $OUT, at most 64 MiB come back")
    return problems
