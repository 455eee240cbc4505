"""Output (file): the checks on the output path, its columns, and one chunk's table; the file
itself is assembled from the finished chunks by score/progress.py, by the write rule of
`common.writes` (an existing output is replaced only with --force, and only once complete)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from common.errors import UserError
from common.writes import check_target

FLAG_SUFFIX = "_flag"


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
