"""What each int8 choice costs in fidelity and gives in speed, on real comments, on this CPU.

python -m benchmarks.int8_study --model artifacts/model --data ../shared/data/jigsaw/train.csv

For each preset (--isas) and each fp32 holdout, `python -m export` quantizes the model with its
limits turned off and records how far int8 strays from PyTorch on the first --rows labelled
rows (largest and p99 probability gap, flag agreement at the training thresholds, macro ROC-AUC
change); then `python -m score` times every file on the same rows, in rounds, so the machine's
drift touches every choice alike. Writes int8_study.md and int8_study.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from common.cli import HelpFormatter, positive_int
from common.cpu import this_cpu
from common.writes import write_text

HOLDOUTS = ("none", "ffn-output", "ffn")
# The fidelity targets export enforces by default (python -m export --help, "int8 fidelity").
TARGETS = {"max_abs_diff": 0.05, "p99_abs_diff": 0.02, "flag_agreement_min": 0.995, "auc": 0.002}
LIMITS_OFF = [
    "--int8-max-diff", "1", "--int8-p99-diff", "1",
    "--int8-min-agreement", "0", "--int8-max-auc-drop", "1",
]  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.int8_study",
        description="Fidelity and speed of each int8 preset and fp32 holdout on real comments. "
        "Example: python -m benchmarks.int8_study --model artifacts/model "
        "--data ../shared/data/jigsaw/train.csv",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--model", type=Path, required=True, help="folder written by python -m train")
    p.add_argument("--data", type=Path, required=True, help="labelled CSV of real comments")
    p.add_argument(
        "--rows", type=positive_int, default=2000, help="first N labelled rows of --data"
    )
    p.add_argument("--isas", nargs="+", default=["avx2", "avx512", "avx512_vnni"])
    p.add_argument("--repeats", type=positive_int, default=2, help="timed rounds over every file")
    p.add_argument("--threads", type=positive_int, default=2, help="onnxruntime intra-op threads")
    p.add_argument("--out", type=Path, default=None, help="default benchmarks/results/<cpu>/")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = this_cpu()
    out = args.out or Path("benchmarks/results") / cpu.slug()
    with tempfile.TemporaryDirectory(prefix="int8-study-") as scratch:
        scratch = Path(scratch)
        texts = _texts_csv(args.data, args.rows, scratch / "texts.csv")
        folders = _export_all(args, scratch)
        speed = _time_all(folders, texts, args.repeats, args.threads)
    rows = _rows(folders, speed)
    out.mkdir(parents=True, exist_ok=True)
    record = {"cpu": cpu.describe(), "rows": args.rows, "data": str(args.data), "results": rows}
    write_text(out / "int8_study.json", json.dumps(record, indent=2) + "\n")
    write_text(out / "int8_study.md", _report(record))
    print(_report(record))
    return 0


def _texts_csv(data: Path, rows: int, target: Path) -> Path:
    frame = pl.read_csv(data, infer_schema=False, n_rows=rows)
    frame.select("id", "comment_text").write_csv(target)
    return target


def _export_all(args, scratch: Path) -> dict[tuple[str, str], Path]:
    """One export folder per (preset, holdout); the first also holds optimized fp32."""
    folders = {}
    for isa in args.isas:
        for holdout in HOLDOUTS:
            folder = scratch / f"{isa}-{holdout}"
            first = not folders
            cmd = [
                sys.executable, "-m", "export", "--model", str(args.model), "--out", str(folder),
                "--device", "cpu", "--eval-data", str(args.data), "--eval-rows", str(args.rows),
                "--int8-isa", isa, "--int8-fp32", holdout, *LIMITS_OFF,
                *([] if first else ["--no-optimized"]),
            ]  # fmt: skip
            print(f"export {isa} / {holdout} ...", file=sys.stderr, flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            folders[(isa, holdout)] = folder
    return folders


def _time_all(folders: dict, texts: Path, repeats: int, threads: int) -> dict:
    """rows/s of `python -m score` per file, best of `repeats` rounds over every file."""
    base = next(iter(folders.values()))
    runs = [(("fp32", "-"), base, "fp32"), (("optimized", "-"), base, "optimized")]
    runs += [(key, folder, "int8") for key, folder in folders.items()]
    best: dict = {}
    for _ in range(repeats):
        for key, folder, variant in runs:
            (folder / "scores.parquet").unlink(missing_ok=True)
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable, "-m", "score", str(texts), str(folder / "scores.parquet"),
                    "--model", str(folder), "--provider", "cpu", "--variant", variant,
                    "--threads", str(threads), "--quiet",
                ],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            rate = pl.scan_parquet(folder / "scores.parquet").select(pl.len()).collect().item()
            rate /= time.perf_counter() - started
            best[key] = max(best.get(key, 0.0), rate)
    return best


def _rows(folders: dict, speed: dict) -> list[dict]:
    baseline = speed[("optimized", "-")]
    rows = [
        {"isa": name, "fp32_holdout": "-", "rows_per_s": speed[(name, "-")]}
        for name in ("fp32", "optimized")
    ]
    for (isa, holdout), folder in folders.items():
        int8 = json.loads((folder / "export.json").read_text())["variants"]["int8"]
        rows.append({"isa": isa, "fp32_holdout": holdout, **int8["fidelity"],
                     "rows_per_s": speed[(isa, holdout)]})  # fmt: skip
    for row in rows:
        row["x_optimized"] = row["rows_per_s"] / baseline
        row.pop("limits", None)
        if "max_abs_diff" in row:
            row["within_targets"] = _within(row)
    return rows


def _within(row: dict) -> bool:
    return (
        row["max_abs_diff"] <= TARGETS["max_abs_diff"]
        and row["p99_abs_diff"] <= TARGETS["p99_abs_diff"]
        and row.get("flag_agreement_min", 1.0) >= TARGETS["flag_agreement_min"]
        and row.get("roc_auc_change", 0.0) >= -TARGETS["auc"]
    )


def _report(record: dict) -> str:
    lines = [
        "# int8 choices: fidelity against PyTorch and speed",
        "",
        f"CPU: {record['cpu']}. Rows: the first {record['rows']} labelled rows of "
        f"`{Path(record['data']).name}`; speed: `python -m score` end to end on the same rows, "
        "best of the rounds, every file timed in each round.",
        "",
        "| variant / preset | fp32 holdout | max abs diff | p99 | worst flag agreement | rows "
        "with a flag change | macro ROC-AUC change | rows/s | x optimized fp32 | within targets |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in record["results"]:
        if "max_abs_diff" not in r:
            lines.append(
                f"| {r['isa']} | - | - | - | - | - | - | {r['rows_per_s']:.0f} | "
                f"{r['x_optimized']:.2f} | - |"
            )
            continue
        agree = r.get("flag_agreement_min")
        lines.append(
            f"| int8 {r['isa']} | {r['fp32_holdout']} | {r['max_abs_diff']:.3f} | "
            f"{r['p99_abs_diff']:.4f} | {'-' if agree is None else f'{agree:.2%}'} | "
            f"{r.get('rows_with_a_flag_change', '-')} | {r.get('roc_auc_change', 0):+.4f} | "
            f"{r['rows_per_s']:.0f} | {r['x_optimized']:.2f} | "
            f"{'yes' if r['within_targets'] else 'no'} |"
        )
    lines += [
        "",
        f"Targets: max <= {TARGETS['max_abs_diff']}, p99 <= {TARGETS['p99_abs_diff']}, flag "
        f"agreement >= {TARGETS['flag_agreement_min']:.1%} per label, ROC-AUC drop <= "
        f"{TARGETS['auc']}. Presets other than this CPU's run here with this CPU's kernels: "
        "their fidelity holds on their own CPUs (integer products are exact), except that the "
        "avx512 preset's 7-bit weights exist to avoid saturation that VNNI CPUs do not have.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
