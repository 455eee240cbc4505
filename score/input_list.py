"""Inputs of a multi-file run: files named one by one, or the CSV and Parquet files of folders."""

from __future__ import annotations

from pathlib import Path

from common.errors import UserError

SUFFIXES = {".csv", ".parquet"}


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files in the order given; a folder gives its *.csv and *.parquet files, sorted by name.

    Each input becomes an output folder named after its stem, so two stems may not clash.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
            if not found:
                raise UserError(f"folder {path} holds no .csv or .parquet file; pass files")
            files.extend(found)
        else:
            files.append(path)  # a missing file gets open_input's message
    seen: dict[str, Path] = {}
    for file in files:
        if file.stem in seen and seen[file.stem].resolve() != file.resolve():
            raise UserError(
                f"{seen[file.stem]} and {file} would both be written to the output folder "
                f"{file.stem}/; rename one of them"
            )
        if file.stem in seen:
            raise UserError(f"{file} is given twice; pass each input once")
        seen[file.stem] = file
    return files
