"""A run's progress, so a stopped run resumes: each finished chunk is a Parquet part in
`.<output>.parts/`, and run.json there names the run (input, model, variant, labels, settings).
The same command skips finished chunks; the output is assembled from the parts at the end. An
error (not an interruption) discards the progress: running again would meet the same error."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from common.errors import UserError
from common.writes import atomic_file, write_text

RUN_FILE = "run.json"
METADATA_KEY = b"toxic_pipeline"  # the output's key-value metadata: what made it


@dataclass(frozen=True)
class Resumed:
    """A chunk an earlier run finished: its rows and empty texts."""

    rows: int
    empty: int


def input_facts(path: Path) -> dict:
    stat = path.stat()
    return {"name": path.name, "bytes": stat.st_size, "modified_ns": stat.st_mtime_ns}


def model_facts(model_dir: Path) -> dict:
    """The export folder's identity: export.json's hash (a re-export changes it) and source."""
    record = model_dir / "export.json"
    data = record.read_bytes() if record.is_file() else (model_dir / "model.onnx").read_bytes()
    source = json.loads(data).get("source") if record.is_file() else None
    return {"folder": model_dir.name, "export_sha256": hashlib.sha256(data).hexdigest(),
            "source": source}  # fmt: skip


def tool_version() -> str:
    try:
        return version("toxic-pipeline")
    except PackageNotFoundError:  # run from a checkout without installing it
        return "unknown"


class Progress:
    """The work folder of one output; `identity` says which run may resume from it."""

    def __init__(self, output: Path, identity: dict, force: bool) -> None:
        self.folder = output.parent / f".{output.name}.parts"
        self.identity = identity
        saved = self._saved()
        if saved is not None and saved != identity:
            if not force:
                raise UserError(
                    f"{self.folder} holds the progress of another run ({_differs(saved, identity)}"
                    "); run that command again to resume it, or pass --force to discard it"
                )
            saved = None
        if saved is None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir()
            write_text(self.folder / RUN_FILE, json.dumps(identity, indent=2) + "\n")
        self.parts = {int(p.stem[5:]): p for p in self.folder.glob("part-*.parquet")}

    def _saved(self) -> dict | None:
        try:
            return json.loads((self.folder / RUN_FILE).read_text())
        except (OSError, ValueError):  # none, or a run killed before it wrote run.json
            return None

    def resumed(self, start: int) -> Resumed | None:
        """The chunk starting at row `start`, if an earlier run finished it."""
        if start not in self.parts:
            return None
        meta = pq.read_metadata(self.parts[start])
        return Resumed(meta.num_rows, int(meta.metadata[b"empty"]))

    def save(self, start: int, table: pa.Table, empty: int) -> None:
        table = table.replace_schema_metadata({"empty": str(empty)})
        with atomic_file(self.folder / f"part-{start:012d}.parquet", tidy=False) as tmp:
            pq.write_table(table, tmp)

    def assemble(self, output: Path, schema: pa.Schema, made_by: dict) -> None:
        """The parts in input order into `output` (one row group each), then the folder goes."""
        schema = schema.with_metadata({METADATA_KEY: json.dumps(made_by)})
        with atomic_file(output) as tmp, pq.ParquetWriter(tmp, schema) as writer:
            for path in sorted(self.folder.glob("part-*.parquet")):
                table = pq.read_table(path).replace_schema_metadata(schema.metadata)
                writer.write_table(table, row_group_size=max(len(table), 1))
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _differs(saved: dict, identity: dict) -> str:
    keys = [k for k in identity if saved.get(k) != identity[k]] or ["its record"]
    return "another " + ", ".join(keys)
