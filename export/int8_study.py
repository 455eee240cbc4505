"""Every int8 graph, preset and fp32 holdout, checked as export checks int8 and timed on the
scorer's batches (best of --repeats rounds, every file in each round, so drift touches all
alike), into int8_study.md and .json. python -m export.int8_study --model M --data labelled.csv
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import onnxruntime as ort

from common.batching import batches, batching_for
from common.cli import parser
from common.cpu import this_cpu
from common.labelled import read_eval_sample
from common.variants import Limits
from export import quantize
from export.checker import VariantChecker
from export.notes import hide_library_notes
from export.quantize import HOLDOUTS
from export.run import make_checker
from export.run import run as export_run

log = logging.getLogger("export")
TARGETS = Limits()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser(
        "python -m export.int8_study",
        "Fidelity and speed of each int8 graph, preset and fp32 holdout on real comments. "
        "Example: python -m export.int8_study --model artifacts/model --data labelled.csv",
    )
    p.add_argument("--model", type=Path, required=True, help="folder written by python -m train")
    p.add_argument("--data", type=Path, required=True, help="labelled CSV of real comments")
    p.add_argument("--rows", type=int, default=2000, help="first N labelled rows of --data")
    p.add_argument("--isas", nargs="+", default=None, help="presets (default: this CPU's, avx2)")
    p.add_argument("--graphs", nargs="+", default=["fused", "plain"], choices=["fused", "plain"])
    p.add_argument("--repeats", type=int, default=3, help="timed rounds over every file")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    p.add_argument("--out", type=Path, default=None, help="default benchmarks/results/<cpu>/")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    hide_library_notes()
    cpu = this_cpu()
    isas = args.isas or list(dict.fromkeys([quantize.isa_for(cpu), "avx2"]))
    out = args.out or Path("benchmarks/results") / cpu.slug()
    with tempfile.TemporaryDirectory(prefix="int8-study-") as scratch:
        folder = Path(scratch) / "onnx"
        export_run(model_dir=args.model, out=folder, variants=["optimized"])
        config = json.loads((folder / "config.json").read_text())
        labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        sample = read_eval_sample(args.data, "comment_text", labels, args.rows, log)
        checker = make_checker(args.model, folder, labels, sample)
        files = {("fp32", "-", "-"): folder / "model.onnx"}
        files[("optimized", "-", "-")] = folder / "model_optimized.onnx"
        rows = {key: {} for key in files}
        for graph in args.graphs:
            source = "model_optimized.onnx" if graph == "fused" else "model.onnx"
            for isa in isas:
                for holdout in HOLDOUTS:
                    target = f"int8-{graph}-{isa}-{holdout}.onnx"
                    path, _ = quantize.quantize(folder, source, target, isa=isa, holdout=holdout)
                    _, probs = checker.check("int8", path, "cpu", cpu.flags)
                    figures, broken = checker.fidelity(probs, TARGETS)
                    figures.pop("limits")
                    rows[(graph, isa, holdout)] = {**figures, "within_targets": not broken}
                    files[(graph, isa, holdout)] = path
                    print(f"{graph} {isa} {holdout}: {broken or 'within'}", file=sys.stderr)
        speed = _time_all(files, _batches(checker), args.repeats, args.threads)
    record = _record(cpu, args, rows, speed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "int8_study.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "int8_study.md").write_text(report(record))
    print(report(record))
    return 0


def _batches(checker: VariantChecker) -> list[dict]:
    """The sample in the scorer's batches (common.batching), tokenized once."""
    return [feed for _, feed in batches(checker.tokens["sample"], batching_for("cpu"))]


def _time_all(files: dict, batches: list[dict], repeats: int, threads: int) -> dict:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    sessions = {
        k: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
        for k, p in files.items()
    }
    rows = sum(len(b["input_ids"]) for b in batches)
    for session in sessions.values():  # warm up: the first run allocates and picks kernels
        names = {i.name for i in session.get_inputs()}
        session.run(["logits"], {k: v for k, v in batches[-1].items() if k in names})
    best = dict.fromkeys(files, 0.0)
    for _ in range(repeats):
        for key, session in sessions.items():
            names = {i.name for i in session.get_inputs()}
            started = time.perf_counter()
            for batch in batches:
                session.run(["logits"], {k: v for k, v in batch.items() if k in names})
            best[key] = max(best[key], rows / (time.perf_counter() - started))
    return best


def _record(cpu, args, rows: dict, speed: dict) -> dict:
    baseline = speed[("optimized", "-", "-")]
    results = [
        {"graph": g, "isa": i, "fp32_holdout": h, "rows_per_s": speed[(g, i, h)],
         "x_optimized": speed[(g, i, h)] / baseline, **rows[(g, i, h)]}
        for (g, i, h) in speed
    ]  # fmt: skip
    return {
        "cpu": cpu.describe(),
        "onnxruntime": ort.__version__,
        "rows": args.rows,
        "data": args.data.name,
        "threads": args.threads,
        "repeats": args.repeats,
        "targets": asdict(TARGETS),
        "results": results,
    }


def report(record: dict) -> str:
    t = record["targets"]
    lines = [
        "# int8 choices: fidelity against PyTorch and speed",
        "",
        f"CPU: {record['cpu']}; onnxruntime {record['onnxruntime']}, {record['threads']} "
        f"threads. Rows: the first {record['rows']:,} labelled rows of "
        f"`{Path(record['data']).name}`. Speed: model only, the same length-sorted batches of "
        f"64 for every file, best of {record['repeats']} rounds.",
        "",
        "| model | preset | fp32 holdout | max abs diff | p99 | worst flag agreement | rows with "
        "a flag change | ROC-AUC change | rows/s | x optimized fp32 | within targets |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in record["results"]:
        speed = f"{r['rows_per_s']:.0f} | {r['x_optimized']:.2f}"
        if "max_abs_diff" not in r:
            lines.append(f"| {r['graph']} fp32 | - | - | - | - | - | - | - | {speed} | - |")
            continue
        lines.append(
            f"| int8 {r['graph']} | {r['isa']} | {r['fp32_holdout']} | {r['max_abs_diff']:.3f} | "
            f"{r['p99_abs_diff']:.4f} | {r['flag_agreement_min']:.2%} | "
            f"{r['rows_with_a_flag_change']} | {r['roc_auc_change']:+.4f} | {speed} | "
            f"{'yes' if r['within_targets'] else 'no'} |"
        )
    lines += [
        "",
        f"Targets (export's default limits): max <= {t['max_diff']}, p99 <= "
        f"{t['p99_diff']}, flag agreement >= {t['min_flag_agreement']:.1%} per label, "
        f"ROC-AUC drop <= {t['max_auc_drop']}. A preset other than this CPU's runs here on this "
        "CPU's kernels; its fidelity carries over to its own CPUs, where integer products are "
        "exact too (u8 weights for avx2, 7-bit for avx512 without VNNI), but its speed does not.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
