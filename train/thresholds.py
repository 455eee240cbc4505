"""Re-pick the per-label thresholds on labelled rows drawn the way your traffic is.

python -m train.thresholds labelled.csv scored.parquet --out artifacts/onnx/thresholds.json

Training picks thresholds that maximise F1 on its validation split. When that split has
another share of positives than the comments you score (Jigsaw's public samples are enriched
in toxic rows), the `_flag` columns over- or under-fire. Score a labelled sample of your own
traffic with `python -m score`, then run this: it matches scores to labels row by row (the
ids must agree), picks the F1-maximising threshold per label, and writes a thresholds.json
that `python -m score --thresholds` reads from the model folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

from common.cli import parser, run_stage
from common.errors import UserError
from common.jsonfile import config_labels, dump_json
from common.labelled import JIGSAW_LABELS, ROW_INDEX, read_labels_with_ids
from common.metrics import best_f1_thresholds
from common.writes import atomic_file, check_target


def read_scores(path: Path, id_column: str, labels: list[str]) -> pl.DataFrame:
    """The id (as text) and one probability column per label from a `python -m score` output."""
    if not path.is_file():
        raise UserError(f"{path} does not exist; score your labelled CSV with python -m score")
    try:
        schema = pl.read_parquet_schema(path)
    except (pl.exceptions.PolarsError, OSError) as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(
            f"{path} is not a readable Parquet file ({first}); pass the scorer's output"
        ) from None
    missing = [c for c in [id_column, *labels] if c not in schema]
    if missing:
        raise UserError(
            f"{path} has no column {', '.join(repr(m) for m in missing)}; score with the id "
            "column kept (no --no-id-column) and a model trained on these --labels"
        )
    frame = pl.read_parquet(path, columns=[id_column, *labels])
    return frame.with_columns(pl.col(id_column).cast(pl.String))


def align(truth: pl.DataFrame, total: int, scores: pl.DataFrame, args) -> pl.DataFrame:
    """The scores of the labelled rows: the scorer keeps every row in order, so row k of the
    Parquet is row k of the CSV, and the ids must say so."""
    labelled, scored, id_column = args.labelled, args.scores, args.id_column
    if scores.height != total:
        raise UserError(
            f"{scored} has {scores.height:,} rows and {labelled} {total:,}; "
            "score that CSV itself with python -m score"
        )
    picked = scores[truth[ROW_INDEX].to_numpy()]
    differ = (picked[id_column] != truth[id_column]).fill_null(True)
    if differ.any():
        k = int(differ.arg_true()[0])
        raise UserError(
            f"data row {int(truth[ROW_INDEX][k]) + 1} has id {truth[id_column][k]!r} in {labelled} "
            f"but {picked[id_column][k]!r} in {scored}; score that CSV itself with python -m score"
        )
    return picked


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser("python -m train.thresholds", __doc__.split("\n\n", 2)[2].replace("\n", " "))
    p.add_argument("labelled", type=Path, help="CSV with the id column and 0/1 label columns")
    p.add_argument("scores", type=Path, help="Parquet that python -m score wrote for that CSV")
    p.add_argument("--out", type=Path, required=True, help="thresholds.json to write")
    p.add_argument(
        "--labels",
        nargs="+",
        help="label columns (default: id2label of the config.json beside --out, the model folder "
        "score --thresholds reads; the six Jigsaw labels where there is none)",
    )
    p.add_argument("--id-column", default="id", help="id column in both files")
    p.add_argument("--drop-unlabeled", action="store_true", help="leave out (and count) -1 rows")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)
    if args.labels and len(set(args.labels)) < len(args.labels):
        p.error("--labels names a label more than once; name each label once")
    return args


def default_labels(out: Path) -> tuple[list[str], str]:
    """The labels of the model folder the thresholds go into, and where they came from."""
    if (out.parent / "config.json").is_file():
        fix = "pass --labels, or --out inside a folder written by python -m export"
        return config_labels(out.parent, fix), f"{out.parent / 'config.json'}"
    return list(JIGSAW_LABELS), f"the Jigsaw default ({out.parent} has no config.json)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    code, result = run_stage("train.thresholds", lambda: _thresholds(args))
    if code:
        return code
    found, rows, dropped, source = result
    print(f"{rows:,} labelled rows ({dropped:,} labelled -1 left out); labels from {source}")
    print("thresholds by best F1:")
    for name, t in found.items():
        f1 = "-" if np.isnan(t["f1"]) else f"{t['f1']:.3f}"
        print(f"  {name:<14} {t['threshold']:.4f}  F1 {f1}  positives {t['positives']:,}")
    print(f"wrote {args.out}")
    return 0


def _thresholds(args: argparse.Namespace) -> tuple[dict, int, int, str]:
    if not args.out.parent.is_dir():
        raise UserError(f"{args.out.parent} is not a folder; pass --out inside one")
    check_target(args.out, args.force, folder=False)
    labels, source = (args.labels, "--labels") if args.labels else default_labels(args.out)
    truth, total, dropped = read_labels_with_ids(
        args.labelled, args.id_column, labels, args.drop_unlabeled, "LABELLED"
    )
    probs = align(truth, total, read_scores(args.scores, args.id_column, labels), args)
    y = truth.select(labels).to_numpy().astype(np.float32)
    found = best_f1_thresholds(y, probs.select(labels).to_numpy(), labels)
    with atomic_file(args.out) as tmp:  # a reader (the scorer) never sees half a file
        dump_json(found, tmp)
    return found, truth.height, dropped, source


if __name__ == "__main__":
    sys.exit(main())
