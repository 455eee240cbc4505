"""`run()`: export the trained folder to ONNX, derive variants, check parity, write export.json."""

from __future__ import annotations

import json
import logging
import platform
import shutil
from pathlib import Path

from export import checks, convert
from export.errors import ParityError, UserError
from export.evaluate import evaluate, read_labelled_sample
from export.parity import PARITY_TEXTS, max_abs_diff
from export.sessions import cuda_usable, open_session

log = logging.getLogger("export")

LIMITS = {"fp32": 1e-4, "optimized": 1e-4, "fp16": 1e-2, "int8": None}  # None: reported only
COPIED = ["thresholds.json", "training_args.json", "metrics.json"]


def run(
    *,
    model_dir: Path,
    out: Path,
    opset: int = 17,
    optimized: bool = True,
    int8: bool = True,
    fp16: bool | None = None,
    device: str = "auto",
    eval_data: Path | None = None,
    eval_rows: int = 2000,
    text_column: str = "comment_text",
    force: bool = False,
) -> dict:
    """Export, check each variant against PyTorch, and move the folder into place."""
    config = checks.check_model_dir(model_dir)
    checks.check_out_dir(out, force)
    checks.check_opset(opset)
    cuda = _resolve_cuda(device)
    if fp16 and not cuda:
        raise UserError(
            "--fp16 needs the CUDA execution provider to check parity and none is "
            "usable here; run on a GPU machine or pass --no-fp16"
        )
    fp16 = cuda if fp16 is None else fp16
    checks.check_optimizable(model_dir, config, optimized, fp16)
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    sample = read_labelled_sample(eval_data, text_column, labels, eval_rows) if eval_data else None

    with checks.staged_dir(out) as tmp:
        convert.export_onnx(model_dir, tmp, opset)
        for name in COPIED:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, tmp / name)
        tokenizer, model = _load_reference(model_dir, tmp)
        record = _variants(tokenizer, model, tmp, optimized=optimized, int8=int8, fp16=fp16)
        if sample is not None:
            record["eval"] = _evaluate(tokenizer, model, tmp, record, sample)
        record.update(
            source=str(model_dir.resolve()),
            opset=opset,
            labels=labels,
            skipped=_skipped(fp16, cuda),
            versions=_versions(),
            axes=_axes(tmp / convert.VARIANT_FILES["fp32"]),
        )
        (tmp / "export.json").write_text(json.dumps(record, indent=2) + "\n")
    failed = [
        f"{n} (max abs diff {v['max_abs_diff']:.2e} > {v['limit']:.0e})"
        for n, v in record["failed"].items()
    ]
    if failed:
        raise ParityError(
            f"parity failed for {', '.join(failed)}: not written to {out}; the other variants were"
        )
    return record


def _load_reference(model_dir: Path, tmp: Path):
    """The exported tokenizer and the PyTorch model, loaded once for parity and evaluation."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp)
    return tokenizer, AutoModelForSequenceClassification.from_pretrained(model_dir).eval()


def _variants(tokenizer, model, tmp: Path, *, optimized: bool, int8: bool, fp16: bool) -> dict:
    max_len = int(tokenizer.model_max_length)
    record = {"max_length": max_len, "variants": {}, "failed": {}}

    def check(name: str, path: Path, provider: str, extra: dict | None = None) -> None:
        diff = max_abs_diff(tokenizer, model, open_session(path, provider), PARITY_TEXTS, max_len)
        limit = LIMITS[name]
        entry = {
            "file": path.name,
            "provider": provider,
            "max_abs_diff": diff,
            "limit": limit,
            "size_mb": round(path.stat().st_size / 2**20, 2),
            **(extra or {}),
        }
        log.info(
            "%-9s %-22s %7.1f MB  max abs diff %.2e (limit %s)",
            name,
            path.name,
            entry["size_mb"],
            diff,
            limit,
        )
        if limit is not None and diff > limit:
            path.unlink()
            record["failed"][name] = entry
            if name == "fp32":  # nothing else can be trusted: write nothing
                raise ParityError(
                    f"parity failed for fp32: max abs diff {diff:.2e} > {limit:.0e}"
                    "; no ONNX model was written"
                )
        else:
            record["variants"][name] = entry

    check("fp32", tmp / convert.VARIANT_FILES["fp32"], "cpu")
    if optimized:
        check("optimized", convert.optimize(tmp, for_gpu=False, fp16=False), "cpu")
    if int8:
        # From the plain graph: the quantizer's shape inference cannot type fused operators.
        path, info = convert.quantize_int8(tmp, convert.VARIANT_FILES["fp32"])
        check("int8", path, "cpu", info)
    if fp16:
        check(
            "fp16",
            convert.optimize(tmp, for_gpu=True, fp16=True),
            "cuda",
            {"io": "int64 inputs, float32 logits (fp16 inside)"},
        )
    return record


def _evaluate(tokenizer, model, tmp: Path, record: dict, sample) -> dict:
    sessions = {
        n: open_session(tmp / v["file"], v["provider"]) for n, v in record["variants"].items()
    }
    result = evaluate(model, tokenizer, sessions, *sample, record["max_length"])
    for name, row in result.items():
        if isinstance(row, dict) and "roc_auc_change" in row:
            log.info(
                "%-9s ROC-AUC macro %.4f (change %+.4f against PyTorch)",
                name,
                row["roc_auc_macro"],
                row["roc_auc_change"],
            )
    return result


def _resolve_cuda(device: str) -> bool:
    usable = device != "cpu" and cuda_usable()
    if device == "cuda" and not usable:
        raise UserError(
            "--device cuda was asked for but onnxruntime cannot use CUDA here; "
            "install onnxruntime-gpu with CUDA 12/13 libraries or pass --device cpu"
        )
    return usable


def _skipped(fp16: bool, cuda: bool) -> dict:
    if fp16:
        return {}
    why = (
        "no usable CUDA execution provider to check its parity; run python -m export on "
        "a GPU machine"
        if not cuda
        else "turned off with --no-fp16"
    )
    return {"fp16": why}


def _axes(path: Path) -> dict:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*graph.input, *graph.output]
    }


def _versions() -> dict:
    import onnxruntime
    import optimum.version
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "optimum": optimum.version.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
