"""Checks on what the steps left: the scorer kept every row in order, and pytest ran the GPU tests
(a skip is a failure where the visit asks for CUDA: skipped GPU tests prove nothing)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path


def check_scored(csv_path: Path, parquet_path: Path) -> dict:
    """Rows and ids of the scorer's output against its input; probabilities finite, in [0, 1]."""
    import polars as pl

    ids_in = pl.read_csv(csv_path, infer_schema=False, columns=["id"])["id"]
    scored = pl.read_parquet(parquet_path)
    probs = scored.drop("id")
    values = probs.to_numpy()
    return {
        "rows_in": ids_in.len(),
        "rows_out": scored.height,
        "ids_in_order": scored.height == ids_in.len() and bool((scored["id"] == ids_in).all()),
        "labels": probs.columns,
        "all_in_0_1": bool(((values >= 0) & (values <= 1)).all()),
        "mean_probability": {c: round(float(probs[c].mean()), 4) for c in probs.columns},
    }


def scored_ok(record: dict) -> bool:
    return (
        record["rows_in"] == record["rows_out"] and record["ids_in_order"] and record["all_in_0_1"]
    )


def check_junit(xml_path: Path, expect_refused: bool) -> dict:
    """Counts of a pytest --junitxml report, and whether they pass the visit's rule.

    On the device every GPU test must pass (a skip fails the visit). Without CUDA (the dry run)
    every one must be refused: an error at setup, none passed and none skipped, which proves
    `pytest -m gpu` cannot pass on a broken CUDA stack.
    """
    suites = ET.parse(xml_path).getroot()
    suites = [suites] if suites.tag == "testsuite" else list(suites)
    counts = {
        key: sum(int(s.get(key, 0)) for s in suites)
        for key in ("tests", "failures", "errors", "skipped")
    }
    counts["names"] = [
        f"{case.get('classname')}::{case.get('name')}"
        for s in suites
        for case in s.iter("testcase")
    ]
    if expect_refused:
        refused = counts["errors"] + counts["failures"]
        counts["ok"] = bool(counts["tests"]) and refused == counts["tests"]
    else:
        bad = counts["failures"] or counts["errors"] or counts["skipped"]
        counts["ok"] = bool(counts["tests"]) and not bad
    return counts
