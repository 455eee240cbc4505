"""Output: the output path's checks, its columns and one chunk's table (score/progress.py
assembles the local file). The Ray engine's workers write `<input>/part-<first row>.parquet`
into the run's progress folder (names sort in input order; a retried task rewrites its own
name); at the end each input's parts must tile its rows, they move into a staged folder and
must be on the driver's disk with the rows reported before that folder is renamed into place."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.errors import UserError
from common.writes import atomic_file, check_target, check_writable, staged_folder
from score.input_csv import first_line

FLAG_SUFFIX = "_flag"
MANIFEST = "_manifest.json"


def check_output_path(output: Path, input_path: Path, force: bool = False) -> None:
    """Cheap checks before anything is loaded."""
    if output.resolve() == input_path.resolve():
        raise UserError(f"the output {output} is the input file; pass another output path")
    if output.is_dir():
        raise UserError(f"the output {output} is a folder; pass a file path such as out.parquet")
    if not output.parent.is_dir():
        raise UserError(f"the output folder {output.parent} does not exist; create it first")
    check_target(output, force, folder=False, flag="output path")


def output_schema(id_name: str, id_type: pa.DataType, labels: list[str], flags: bool) -> pa.Schema:
    """The id (or row) column, a float32 probability per label, then `<label>_flag` booleans."""
    flag_names = [f"{n}{FLAG_SUFFIX}" for n in labels] if flags else []
    names = [id_name, *labels, *flag_names]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise UserError(
            f"output column {clash[0]!r} would appear twice (id column against label names); "
            "pass another --id-column or --no-id-column"
        )
    types = [id_type] + [pa.float32()] * len(labels) + [pa.bool_()] * len(flag_names)
    return pa.schema(list(zip(names, types, strict=True)))


def chunk_table(
    schema: pa.Schema, ids: pa.Array, probs: np.ndarray, thresholds: np.ndarray | None
) -> pa.Table:
    columns = [ids, *(probs[:, i] for i in range(probs.shape[1]))]
    if thresholds is not None:
        columns += [probs[:, i] >= t for i, t in enumerate(thresholds)]
    return pa.Table.from_arrays(columns, schema=schema)


def write_part(
    folder: Path, input_stem: str, first_row: int, table: pa.Table, *, last: bool, blank: int
) -> str:
    """Write one chunk's part atomically; returns its path relative to `folder`. Its metadata
    says whether it ends the input and how many texts were empty, for a run that resumes."""
    target = folder / input_stem / f"part-{first_row:012d}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    table = table.replace_schema_metadata({"last": str(int(last)), "empty": str(blank)})
    # tidy=False: workers on other nodes share this folder, and a PID means nothing across
    # machines; finish() removes what failed attempts left.
    with atomic_file(target, tidy=False) as tmp:
        pq.write_table(table, tmp)
    return str(target.relative_to(folder))


def finished_parts(folder: Path, chunk_rows: int) -> tuple[list[dict], set[str]]:
    """The parts an earlier run of the same command wrote into `folder` (as the workers report
    them), and the stems of the inputs they finish: the final chunk and every one before it."""
    parts = []
    for path in sorted(folder.glob("*/part-*.parquet")):  # not the temporary files of a kill
        meta = pq.read_metadata(path)
        parts.append({
            "input": path.parent.name,
            "first_row": int(path.stem[5:]),
            "rows": meta.num_rows,
            "blank": int(meta.metadata[b"empty"]),
            "last": meta.metadata[b"last"] == b"1",
            "path": str(path.relative_to(folder)),
        })  # fmt: skip
    count = Counter(p["input"] for p in parts)  # parts start at multiples of chunk_rows
    ends = [p for p in parts if p["last"]]  # finished: as many parts as chunks up to the last
    return parts, {p["input"] for p in ends if count[p["input"]] * chunk_rows > p["first_row"]}


def check_output_folder(out: Path, force: bool = False) -> None:
    """A new or empty folder, or (with --force) one this command wrote: it has our manifest."""
    if out.exists() and not out.is_dir():
        raise UserError(f"the output {out} is a file; --engine ray writes a folder: pass one")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise UserError(
                f"the output folder {out} already holds files that python -m score did not "
                "write; pass a new or empty folder"
            )
        if not force:
            raise UserError(f"{out} already exists and is not empty; pass --force to replace it")
    if not out.parent.is_dir():
        raise UserError(f"the output's parent folder {out.parent} does not exist; create it first")
    check_writable(out, "output folder")


def check_parts(parts: list[dict]) -> dict[str, dict]:
    """Per input: rows, blank texts and parts, after checking the parts tile 0..rows exactly.
    Each part is {"input", "first_row", "rows", "blank", "last", "path"}; `last` marks the part
    holding the input's final row, which is how a missing tail would show."""
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


def write_folder(
    output: Path, work: Path, parts: list[dict], names: dict[str, str], about: dict
) -> dict[str, dict]:
    """Check that `parts` (in the progress folder `work`) tile every input, move them into a
    staged output folder (a rename per input: the same storage), write the manifest (`about`,
    the inputs by `names[stem]`, the rows) and put the folder in place. Returns check_parts'."""
    summary = check_parts(parts)
    manifest = {
        "inputs": {names[stem]: entry for stem, entry in summary.items()},
        "rows": sum(entry["rows"] for entry in summary.values()),
        **about,
        "order": "part names sort in input order; rows in a part keep input order",
    }
    with staged_folder(output) as staging:
        for stem in summary:
            os.replace(work / stem, staging / stem)
        finish(staging, parts, manifest)
    return summary


def finish(staging: Path, parts: list[dict], manifest: dict) -> None:
    """Check that each part a worker reported is on this machine, reads as Parquet and holds its
    rows (a worker on another node without shared storage writes to its own disk); drop what
    failed attempts left (stray parts, a killed worker's temporary file); write the manifest.
    The caller puts the folder in place."""
    shared = (
        "the output folder must be on storage that every Ray node sees at the same path (NFS "
        "or a shared mount); pass such an output path"
    )
    for part in parts:
        path = staging / part["path"]
        if not path.is_file():
            raise UserError(f"{path}, written by a Ray worker, is not on this machine; {shared}")
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as e:
            raise UserError(
                f"{path}, written by a Ray worker, is not Parquet ({first_line(e)}); {shared}"
            ) from None
        if rows != part["rows"]:
            raise UserError(
                f"{path} holds {rows} rows where its Ray worker wrote {part['rows']}; {shared}"
            )
    keep = {p for entry in manifest["inputs"].values() for p in entry["parts"]}
    for path in staging.rglob("*"):
        if path.is_file() and str(path.relative_to(staging)) not in keep:
            path.unlink()
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
