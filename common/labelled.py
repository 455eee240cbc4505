"""The one labelled-CSV reader (Jigsaw format) and its rules, for every stage that reads labels:
every label is 0 or 1 (surrounding spaces allowed); "-1" marks Jigsaw's unscored rows, which are
refused or, with drop_unlabeled, left out and counted; any other value, an empty label, a missing
column or an unreadable file is a one-line UserError naming the file, the row and the fix. No row
is ever dropped without being counted."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from common.errors import UserError

JIGSAW_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
ROW_INDEX = "__data_row"  # 0-based data row, kept so messages name the right row after dropping


@dataclass
class LabelledData:
    texts: list[str]
    labels: np.ndarray  # (rows, n_labels) float32 of 0/1
    label_names: list[str]
    empty_texts: int  # null or empty text, kept as ""
    dropped_unlabeled: int  # rows removed by --drop-unlabeled


def read_labelled_csv(
    path: Path,
    text_column: str,
    label_names: list[str],
    drop_unlabeled: bool = False,
    limit: int | None = None,
    flag: str = "--data",
) -> LabelledData:
    """Read texts and 0/1 labels; every problem becomes a UserError naming the file."""
    frame, labels, dropped, _ = _read_labelled(
        path, {text_column: "--text-column"}, label_names, drop_unlabeled, flag, limit
    )
    texts = frame[text_column].fill_null("")
    empty = int((texts.str.strip_chars() == "").sum())
    return LabelledData(texts.to_list(), labels, list(label_names), empty, dropped)


def read_eval_sample(
    path: Path, text_column: str, labels: list[str], rows: int | None, log: logging.Logger
) -> tuple[list[str], np.ndarray]:
    """Texts and int8 0/1 labels of the first `rows` rows of an --eval-data CSV; rows labelled
    -1 (Jigsaw's unscored test rows) are left out and counted in `log`."""
    data = read_labelled_csv(
        path, text_column, labels, drop_unlabeled=True, limit=rows, flag="--eval-data"
    )
    if data.dropped_unlabeled:
        log.info("%s: %d rows labelled -1 (unscored) left out", path, data.dropped_unlabeled)
    return data.texts, data.labels.astype(np.int8)


def read_labels_with_ids(
    path: Path, id_column: str, label_names: list[str], drop_unlabeled: bool, flag: str
) -> tuple[pl.DataFrame, int, int]:
    """Each kept row's position in the file, its id (as text) and 0/1 labels; then the file's
    row count and the -1 rows left out."""
    frame, labels, dropped, total = _read_labelled(
        path, {id_column: "--id-column"}, label_names, drop_unlabeled, flag
    )
    label_frame = pl.DataFrame(labels, schema=label_names)
    return frame.select(ROW_INDEX, id_column).hstack(label_frame), total, dropped


def _read_labelled(
    path: Path,
    columns: dict[str, str],
    label_names: list[str],
    drop_unlabeled: bool,
    flag: str,
    limit: int | None = None,
) -> tuple[pl.DataFrame, np.ndarray, int, int]:
    """The checked rows (with ROW_INDEX), their labels, the -1 rows left out and the file's
    row count. `columns` maps each non-label column needed to the flag that names it."""
    frame = _read_csv(path, flag)
    missing = [c for c in [*columns, *label_names] if c not in frame.columns]
    if missing:
        names, found = ", ".join(map(repr, missing)), ", ".join(frame.columns)
        hint = columns.get(missing[0], "--labels")
        raise UserError(f"{path} has no column {names} (found: {found}); pass {hint}")
    total = frame.height
    frame = frame.with_row_index(ROW_INDEX)
    if limit is not None:
        frame = frame.head(limit)
    frame, dropped = _handle_unlabeled(frame, path, label_names, drop_unlabeled)
    if frame.height == 0:
        raise UserError(f"{path} has no labelled rows left; give a CSV with 0/1 labels")
    return frame, _parse_labels(frame, path, label_names), dropped, total


def _read_csv(path: Path, flag: str) -> pl.DataFrame:
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass {flag} with a labelled CSV")
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty; give a CSV with a header and labelled rows")
    blank = UserError(f"{path} holds only blank space; give a CSV with a header and labelled rows")
    try:
        # Everything as text: labels are checked below, ids may look numeric.
        frame = pl.read_csv(path, infer_schema=False)
    except pl.exceptions.NoDataError:  # nothing but line ends
        raise blank from None
    except pl.exceptions.ComputeError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{path} is not a readable CSV ({first}); fix the file") from None
    if all(not name.strip() for name in frame.columns):  # spaces read as a nameless column
        raise blank
    if frame.height == 0:
        raise UserError(f"{path} has a header but no rows; give a CSV with labelled rows")
    return frame


def _handle_unlabeled(
    frame: pl.DataFrame, path: Path, label_names: list[str], drop_unlabeled: bool
) -> tuple[pl.DataFrame, int]:
    """Jigsaw's test labels use -1 for unscored rows: refuse them, or drop and count them."""
    # fill_null: an empty label cell is not -1; without it the filter below drops the row silently.
    unlabeled = frame.select(
        pl.any_horizontal(pl.col(c).str.strip_chars() == "-1" for c in label_names).fill_null(False)
    ).to_series()
    count = int(unlabeled.sum())
    if count and not drop_unlabeled:
        row = int(unlabeled.arg_true()[0]) + 1
        raise UserError(
            f"{path} has {count} row{'s' * (count != 1)} labelled -1 (unscored), the first at "
            f"data row {row}; pass --drop-unlabeled to leave them out"
        )
    return frame.filter(~unlabeled), count


def _parse_labels(frame: pl.DataFrame, path: Path, label_names: list[str]) -> np.ndarray:
    values = frame.select(ROW_INDEX, *(pl.col(c).str.strip_chars() for c in label_names))
    for name in label_names:
        bad = values.filter(~pl.col(name).is_in(["0", "1"]).fill_null(False))
        if bad.height:
            value, row = bad[name][0], int(bad[ROW_INDEX][0]) + 1
            shown = "an empty value" if value is None else f"value {value!r}"
            raise UserError(
                f"{path} column {name!r} has {shown} at data row {row}; labels must be 0 or 1"
            )
    return values.select(pl.col(label_names).cast(pl.Int8)).to_numpy().astype(np.float32)
