"""A folder of Parquet parts, a subfolder per input, built beside the target and renamed at the end.

Parts are named by the input row they start at (`part-000000050000.parquet`), so sorting the names
gives input order, and a retried task rewrites the same name instead of adding a copy. Before the
rename every input's parts must tile its rows exactly: nothing lost, nothing doubled.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from score.errors import UserError

MANIFEST = "_manifest.json"


def part_name(first_row: int) -> str:
    return f"part-{first_row:012d}.parquet"


def write_part(folder: Path, input_stem: str, first_row: int, table: pa.Table) -> str:
    """Write one part atomically; returns its path relative to `folder`."""
    target = folder / input_stem / part_name(first_row)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return str(target.relative_to(folder))


def check_output_folder(out: Path) -> None:
    """A new or empty folder, or one this command wrote before (it has our manifest)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"the output {out} is a file; --engine ray writes a folder: pass one")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UserError(
            f"the output folder {out} already holds files that python -m score did not write; "
            "pass a new or empty folder"
        )
    if not out.parent.is_dir():
        raise UserError(f"the output's parent folder {out.parent} does not exist; create it first")


def staging_folder(out: Path) -> Path:
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def check_parts(parts: list[dict]) -> dict[str, dict]:
    """Per input: rows, blank texts and parts, after checking the parts tile 0..rows exactly.

    Each part is {"input", "first_row", "rows", "blank", "last", "path"}; `last` marks the part
    holding the input's final row, which is how a missing tail would show.
    """
    by_input: dict[str, list[dict]] = {}
    for part in parts:
        by_input.setdefault(part["input"], []).append(part)
    summary = {}
    for name, group in by_input.items():
        group.sort(key=lambda p: p["first_row"])
        expected = 0
        for part in group:
            if part["first_row"] != expected:
                raise RuntimeError(f"{name}: rows {expected}.. missing or doubled before a part")
            expected += part["rows"]
        if sum(p["last"] for p in group) != 1 or not group[-1]["last"]:
            raise RuntimeError(f"{name}: the parts do not end at the input's last row")
        summary[name] = {
            "rows": expected,
            "empty_texts": sum(p["blank"] for p in group),
            "parts": [p["path"] for p in group],
        }
    return summary


def commit(staging: Path, out: Path, manifest: dict) -> None:
    """Drop what failed attempts left (stray parts, a killed worker's temporary file), write
    the manifest, put the folder in place."""
    keep = {p for entry in manifest["inputs"].values() for p in entry["parts"]}
    for path in staging.rglob("*"):
        if path.is_file() and str(path.relative_to(staging)) not in keep:
            path.unlink()
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old)
    else:
        os.replace(staging, out)
