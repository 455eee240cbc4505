"""Helpers of benchmarks/gpu_check.sh, one subcommand each; the script is the way to run them.

Example: python -m benchmarks.visit preflight --expect cuda --out /tmp/preflight.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.visit",
        description="Steps of the GPU visit (benchmarks/gpu_check.sh runs them). Example: "
        "python -m benchmarks.visit cuda-libs",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("cuda-libs", help="print the nvidia/*/lib folders, ':'-joined")
    p = sub.add_parser("preflight", help="probe CUDA without torch, import everything")
    p.add_argument("--expect", choices=["cpu", "cuda"], required=True)
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p = sub.add_parser("step", help="run a command under a time limit, record one row")
    p.add_argument("--name", required=True)
    p.add_argument("--limit", type=float, required=True, help="seconds")
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--row", type=Path, required=True, help="JSON file for the row")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")
    p = sub.add_parser("model", help="build the model to export and time")
    p.add_argument("--size", choices=["tiny", "bert-base"], required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("comments", help="a CSV of N comments from the labelled rows")
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("demo-data", help="synthetic labelled rows where the real CSV is absent")
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help="folder")
    p = sub.add_parser("scored", help="check the scorer's output against its input")
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p = sub.add_parser("nodes", help="profile one batch; every node's provider")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--provider", choices=["cpu", "cuda"], required=True)
    p.add_argument("--texts", type=Path, required=True)
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p = sub.add_parser("junit", help="check a pytest --junitxml report")
    p.add_argument("--xml", type=Path, required=True)
    p.add_argument("--expect-refused", action="store_true")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p = sub.add_parser("finish", help="write summary.md and summary.json, check $OUT")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", required=True, help="step names in order, comma-separated")
    p.add_argument("--mode", required=True)
    p.add_argument("--budget", type=int, required=True)
    p.add_argument("--total", type=int, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return COMMANDS[args.command](args)


def _cuda_libs(args: argparse.Namespace) -> int:
    from benchmarks.visit.cuda_libs import lib_dirs, nvidia_roots

    print(":".join(str(d) for d in lib_dirs(nvidia_roots())))
    return 0


def _preflight(args: argparse.Namespace) -> int:
    from benchmarks.visit.preflight import run

    return run(args.out, args.expect)


def _step(args: argparse.Namespace) -> int:
    from benchmarks.visit.limits import run_step

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    return run_step(args.name, args.limit, args.log, cmd, args.row)


def _model(args: argparse.Namespace) -> int:
    from benchmarks.visit.inputs import build_model

    build_model(args.size, args.out)
    return 0


def _comments(args: argparse.Namespace) -> int:
    from benchmarks.visit.inputs import write_comments

    write_comments(args.source, args.out, args.rows)
    return 0


def _demo_data(args: argparse.Namespace) -> int:
    from benchmarks.visit.inputs import write_demo_data

    write_demo_data(args.out, args.rows)
    return 0


def _scored(args: argparse.Namespace) -> int:
    from benchmarks.visit.checks import check_scored, scored_ok

    record = check_scored(args.input, args.output)
    return _dump(record, args.out, scored_ok(record))


def _nodes(args: argparse.Namespace) -> int:
    from benchmarks.visit.nodes import profile_batch

    record = profile_batch(args.model, args.provider, args.texts, args.rows, args.out.parent)
    return _dump(record, args.out, record["ok"])


def _junit(args: argparse.Namespace) -> int:
    from benchmarks.visit.checks import check_junit

    record = check_junit(args.xml, args.expect_refused)
    return _dump(record, args.out, record["ok"])


def _finish(args: argparse.Namespace) -> int:
    from benchmarks.visit.summary import finish

    return finish(
        work=args.work,
        out=args.out,
        steps=[s for s in args.steps.split(",") if s],
        mode=args.mode,
        budget_s=args.budget,
        total_s=args.total,
    )


def _dump(record: dict, out: Path, ok: bool) -> int:
    """The record to its JSON file and stdout (the step's log); 1 when its check failed."""
    text = json.dumps(record, indent=2)
    out.write_text(text + "\n")
    print(text)
    return 0 if ok else 1


COMMANDS = {
    "cuda-libs": _cuda_libs,
    "preflight": _preflight,
    "step": _step,
    "model": _model,
    "comments": _comments,
    "demo-data": _demo_data,
    "scored": _scored,
    "nodes": _nodes,
    "junit": _junit,
    "finish": _finish,
}

if __name__ == "__main__":
    sys.exit(main())
