"""The visit's summary: one row per step and the figures each step recorded, written to
$OUT/summary.json and summary.md (everything else travels in the archive), then $OUT is checked
against the device tool's rules for what comes back."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from benchmarks.visit.outdir import check_out

SCORED = re.compile(
    r"scored (?P<rows>\d+) rows in (?P<seconds>[\d.]+) s \((?P<rows_per_s>\d+) rows/s\) "
    r"on (?P<provider>\w+).* with the (?P<variant>\w+) model"
)
TRAIN = re.compile(r"step (\d+)/\d+ loss ([\d.]+) lr \S+ (\d+) samples/s")


def finish(
    *, work: Path, out: Path, steps: list[str], mode: str, budget_s: int, total_s: int
) -> int:
    """Write both summaries; 0 when every step passed (or was optional) and $OUT is fine."""
    results = work / "results"
    rows = [_row(work, name) for name in steps]
    record = {
        "mode": mode,
        "gpu": _read(results / "preflight.json").get("gpu_name"),
        "budget_s": budget_s,
        "total_s": total_s,
        "steps": rows,
        "failed": [r["step"] for r in rows if r.get("rc") not in (0, None)],
        "not_run": [r["step"] for r in rows if r.get("rc") is None and not r.get("optional")],
        "figures": figures(results),
    }
    for check in (False, True):  # the second pass records what the first left under $OUT
        record["out_problems"] = check_out(out) if check else []
        _write(out / "summary.md", markdown(record))
        _write(out / "summary.json", json.dumps(record, indent=2) + "\n")
    print(markdown(record))
    return 1 if record["failed"] or record["not_run"] or record["out_problems"] else 0


def _row(work: Path, name: str) -> dict:
    path = work / "rows" / f"{name}.json"
    return (
        json.loads(path.read_text())
        if path.is_file()
        else {"step": name, "rc": None, "skipped": "not reached"}
    )


def figures(results: Path) -> dict:
    """What each step measured, read from the files it left (absent ones are left out)."""
    found = {
        "preflight": _preflight(_read(results / "preflight.json")),
        "export": _export(results / "export"),
        "score": _score_line(results / "logs" / "score.log"),
        "scored": _read(results / "scored.json"),
        "nodes": _read(results / "nodes.json"),
        "benchmarks": _benchmarks(results / "benchmarks"),
        "train": _train(results / "logs" / "train.log"),
        "pytest_gpu": _read(results / "pytest-gpu.json"),
    }
    return {k: v for k, v in found.items() if v}


def _preflight(info: dict) -> dict:
    keep = [
        "python", "onnxruntime_cuda_usable", "torch_loaded_before_probe", "torch_loaded_by_probe",
        "cuda_libraries", "cuda_available", "bf16", "torch_cuda", "minilm_weights", "problems",
    ]  # fmt: skip
    versions = {
        name: m.get("version") for name, m in info.get("modules", {}).items() if "." not in name
    }
    return {**{k: info[k] for k in keep if k in info}, "versions": versions} if info else {}


def _export(folder: Path) -> dict:
    record = _read(folder / "export.json")
    keep = ["variants", "skipped", "parity", "device"]
    return {k: record[k] for k in keep if k in record}


def _score_line(log: Path) -> dict:
    if not log.is_file():
        return {}
    match = SCORED.search(log.read_text(errors="replace"))
    if not match:
        return {}
    found = match.groupdict()
    numbers = {"rows": int(found["rows"]), "seconds": float(found["seconds"])}
    return {**found, **numbers, "rows_per_s": int(found["rows_per_s"])}


def _benchmarks(folder: Path) -> dict:
    reports = sorted(folder.glob("*/results.json"))
    if not reports:
        return {}
    record = _read(reports[0])
    engines = record.get("throughput", {}).get("engines", {})
    return {
        "folder": reports[0].parent.name,
        "rows_per_s": {name: round(row["rows_per_s"], 1) for name, row in engines.items()},
        "targets": [
            {k: t.get(k) for k in ("target", "goal", "measured", "met")}
            for t in record.get("targets", [])
        ],
    }


def _train(log: Path) -> dict:
    if not log.is_file():
        return {}
    points = [tuple(map(float, m)) for m in TRAIN.findall(log.read_text(errors="replace"))]
    if not points:
        return {}
    return {
        "logged_steps": [int(p[0]) for p in points],
        "losses": [p[1] for p in points],
        "samples_per_s": [p[2] for p in points],
        "loss_fell": len(points) > 1 and points[-1][1] < points[0][1],
    }


def markdown(record: dict) -> str:
    card = record["gpu"] or "no GPU"
    lines = [
        f"# GPU visit ({record['mode']}) on {card}",
        "",
        f"{record['total_s']} s of a {record['budget_s']} s budget.",
        "",
        "| step | exit | seconds | limit s | peak host MiB | peak GPU MiB | note |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in record["steps"]:
        note = r.get("skipped") or ("reused from an earlier call" if r.get("reused") else "")
        cells = [
            r.get(k, "") for k in ("rc", "seconds", "limit_s", "peak_host_mib", "peak_gpu_mib")
        ]
        lines.append(f"| {r['step']} | " + " | ".join(str(c) for c in cells) + f" | {note} |")
    for name, value in record["figures"].items():
        lines += ["", f"## {name} ({card})", "", "```", json.dumps(value, indent=1), "```"]
    if record.get("failed"):
        lines += ["", f"FAILED: {', '.join(record['failed'])}"]
    if record.get("not_run"):
        lines += ["", f"NOT RUN: {', '.join(record['not_run'])}"]
    for problem in record.get("out_problems", []):
        lines += ["", f"$OUT: {problem}"]
    return "\n".join(lines) + "\n"


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
