"""Export the trained model to ONNX (plain, graph-optimized, int8, fp16 on CUDA) and the OpenVINO
variants (bf16, static int8), each checked against PyTorch.

python -m export --opset 17
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.cli import (
    HelpFormatter,
    fraction,
    positive_int,
    run_stage,
    setup_logging,
)
from export.notes import hide_library_notes
from export.quantize import HOLDOUTS, ISAS, Int8Limits


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a model folder written by `python -m train` to ONNX with dynamic "
        "batch and sequence axes, derive optimized/int8/fp16 variants and the OpenVINO ones "
        "(bf16, int8-static), and check each against PyTorch before writing it. Example: "
        "python -m export --opset 17 --eval-data labelled.csv",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--model",
        type=Path,
        default=Path("artifacts/model"),
        help="the training stage's output folder",
    )
    p.add_argument(
        "--out", type=Path, default=Path("artifacts/onnx"), help="folder for the ONNX variants"
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset of the export")
    p.add_argument(
        "--optimized",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="graph-optimized fp32 (attention, skip-layer-norm, GELU fusions)",
    )
    p.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="dynamic int8 quantization for the CPU",
    )
    q = p.add_argument_group(
        "int8, int8-static and bf16 fidelity",
        "int8 and int8-static are checked against PyTorch on the parity texts and the "
        "--eval-data rows; past any limit the next fp32 holdout (--int8-fp32) is tried, and past "
        "them all the variant is not written (exit 1). Looser limits let it flip more flags at "
        "the training thresholds (see the README). The four limits bind bf16 too; --int8-isa "
        "and --int8-graph concern onnxruntime's int8 only.",
    )
    q.add_argument(
        "--int8-isa",
        choices=["auto", *ISAS],
        default="auto",
        help="quantization preset: auto is this CPU's (onnxruntime runs any x86 preset on any "
        "x86 CPU, fastest on its own kind)",
    )
    q.add_argument(
        "--int8-fp32",
        choices=["auto", *HOLDOUTS],
        default="auto",
        help="MatMuls kept in fp32: auto tries none, then the feed-forward output projections, "
        "then all feed-forward MatMuls, and keeps the first within the limits",
    )
    q.add_argument(
        "--int8-graph",
        choices=["fused", "plain"],
        default="fused",
        help="quantize the graph-optimized model (fused attention in int8: faster) or the plain "
        "one; fused needs --optimized",
    )
    q.add_argument(
        "--int8-max-diff",
        type=fraction,
        default=Int8Limits.max_diff,
        help="largest absolute probability difference allowed",
    )
    q.add_argument(
        "--int8-p99-diff",
        type=fraction,
        default=Int8Limits.p99_diff,
        help="99th percentile of the absolute probability difference allowed",
    )
    q.add_argument(
        "--int8-min-agreement",
        type=fraction,
        default=Int8Limits.min_flag_agreement,
        help="least share of rows whose flag agrees with PyTorch's at the training thresholds, "
        "per label",
    )
    q.add_argument(
        "--int8-max-auc-drop",
        type=fraction,
        default=Int8Limits.max_auc_drop,
        help="largest macro ROC-AUC drop on labelled --eval-data",
    )
    p.add_argument(
        "--fp16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fp16 for the CUDA provider (default: when CUDA is usable, since its "
        "parity is checked on CUDA)",
    )
    p.add_argument(
        "--int8-static",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="static int8 for OpenVINO (NNCF, scales calibrated on the --calibration-rows rows "
        "of --eval-data after --eval-rows; the fastest CPU variant on VNNI and AMX CPUs); the "
        "same fp32 holdouts and limits as int8. Needs --eval-data",
    )
    p.add_argument(
        "--calibration-rows",
        type=positive_int,
        default=300,
        help="--eval-data rows (after the --eval-rows checked ones) that int8-static calibrates on",
    )
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check model.onnx run by OpenVINO in bf16 on the CPU, held to the int8 fidelity "
        "limits (default: where this CPU has avx512_bf16 or amx_bf16, the only CPUs where "
        "bf16 runs in hardware)",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where parity of the fp16 variant is checked",
    )
    p.add_argument(
        "--eval-data",
        type=Path,
        default=None,
        help="labelled CSV: check int8, int8-static and bf16 on its first --eval-rows rows "
        "(and report each variant's ROC-AUC change against PyTorch); int8-static calibrates on "
        "the --calibration-rows rows after them",
    )
    p.add_argument(
        "--eval-rows", type=positive_int, default=2000, help="rows of --eval-data to use"
    )
    p.add_argument("--text-column", default="comment_text", help="text column of --eval-data")
    p.add_argument("--force", action="store_true", help="replace --out if it has content")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("export")
    hide_library_notes()
    code, record = run_stage("export", lambda: _export(args))
    if code:
        return code
    for name, v in record["variants"].items():
        print(
            f"{name:<11} {v['file']:<22} {v['size_mb']:>7.1f} MB  "
            f"max abs diff {v['max_abs_diff']:.1e}"
        )
    print(f"wrote {args.out}")
    return 0


def _export(args: argparse.Namespace) -> dict:
    from export.run import run  # heavy imports after --help and argument errors

    return run(
        model_dir=args.model,
        out=args.out,
        opset=args.opset,
        optimized=args.optimized,
        int8=args.int8,
        fp16=args.fp16,
        bf16=args.bf16,
        device=args.device,
        eval_data=args.eval_data,
        eval_rows=args.eval_rows,
        text_column=args.text_column,
        force=args.force,
        int8_isa=args.int8_isa,
        int8_fp32=args.int8_fp32,
        int8_graph=args.int8_graph,
        int8_static=args.int8_static,
        calibration_rows=args.calibration_rows,
        int8_limits=Int8Limits(
            max_diff=args.int8_max_diff,
            p99_diff=args.int8_p99_diff,
            min_flag_agreement=args.int8_min_agreement,
            max_auc_drop=args.int8_max_auc_drop,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
