"""`run()`: export the trained folder to ONNX, derive variants, check parity, write export.json."""

from __future__ import annotations

import json
import logging
import platform
import shutil
from pathlib import Path

import numpy as np

from common.artifacts import VARIANT_FILES
from common.cpu import NO_BF16, bf16_flag, this_cpu
from common.errors import ParityError, UserError
from common.labelled import read_eval_sample
from common.sessions import cuda_usable
from common.writes import check_target, staged_folder
from export import checks, convert, quantize, quantize_static
from export.quantize import Int8Limits
from export.variants import VariantChecker

log = logging.getLogger("export")

COPIED = ["thresholds.json", "training_args.json", "metrics.json"]
LOOSEN = (
    "loosen them with --int8-max-diff/--int8-p99-diff/--int8-min-agreement/--int8-max-auc-drop "
    "or pass --no-{name}"
)
# Tried in this order until one keeps int8 within its limits: the first is the fastest.
INT8_HOLDOUT_ORDER = ("none", "ffn-output", "ffn")


def run(
    *,
    model_dir: Path,
    out: Path,
    opset: int = 17,
    optimized: bool = True,
    int8: bool = True,
    fp16: bool | None = None,
    bf16: bool | None = None,
    device: str = "auto",
    eval_data: Path | None = None,
    eval_rows: int = 2000,
    text_column: str = "comment_text",
    force: bool = False,
    int8_isa: str = "auto",
    int8_fp32: str = "auto",
    int8_graph: str = "fused",
    int8_limits: Int8Limits | None = None,
    int8_static: bool = True,
    calibration_rows: int = 300,
) -> dict:
    """Export, check each variant against PyTorch, and move the folder into place.

    `int8_isa="auto"` is this CPU's preset; `int8_fp32="auto"` tries INT8_HOLDOUT_ORDER;
    `bf16=None` checks bf16 where this CPU runs it in hardware. `int8_static` calibrates on
    the `calibration_rows` rows of `eval_data` after its `eval_rows` (never the checked ones).
    """
    config = checks.check_model_dir(model_dir)
    check_target(out, force, folder=True)
    checks.check_opset(opset)
    cpu = this_cpu()
    isa = quantize.isa_for(cpu) if int8_isa == "auto" else int8_isa
    bf16 = resolve_bf16(bf16, cpu.flags)
    cuda = _resolve_cuda(device)
    if fp16 and not cuda:
        raise UserError(
            "--fp16 needs the CUDA execution provider to check parity and none is "
            "usable here; run on a GPU machine or pass --no-fp16"
        )
    fp16 = cuda if fp16 is None else fp16
    checks.check_optimizable(model_dir, config, optimized, fp16)
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    sample, calibration = _samples(eval_data, text_column, labels, eval_rows, calibration_rows)

    with staged_folder(out) as tmp:
        convert.export_onnx(model_dir, tmp, opset)
        for name in COPIED:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, tmp / name)
        checker = _checker(model_dir, tmp, labels, sample)
        record = {"max_length": checker.max_len, "variants": {}, "failed": {}}
        _plain_variants(checker, tmp, record, optimized=optimized, fp16=fp16)
        limits = int8_limits or Int8Limits()
        if bf16:
            _bf16_variant(checker, tmp, record, limits)
        holdouts = INT8_HOLDOUT_ORDER if int8_fp32 == "auto" else (int8_fp32,)
        if int8:
            _int8_variant(checker, tmp, record, isa, holdouts, limits, int8_graph)
        if int8_static and calibration:
            _int8_static_variant(checker, tmp, record, calibration, holdouts, limits, cpu.flags)
        if sample is not None:
            record["eval"] = _eval_section(checker, record)
        record.update(
            source=str(model_dir),
            opset=opset,
            labels=labels,
            skipped={
                **_skipped(fp16, cuda, int8, bf16, cpu.flags),
                **_static_skipped(int8_static, calibration, eval_data),
            },
            versions=_versions(),
            axes=_axes(tmp / VARIANT_FILES["fp32"]),
        )
        (tmp / "export.json").write_text(json.dumps(record, indent=2) + "\n")
    if record["failed"]:
        raise ParityError(
            f"{'; '.join(v['why'] for v in record['failed'].values())}: not written to {out}; "
            "the other variants were"
        )
    return record


def _checker(model_dir: Path, tmp: Path, labels: list[str], sample) -> VariantChecker:
    """The exported tokenizer and the PyTorch model, loaded once for every check."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    return VariantChecker(tokenizer, model, sample=sample, thresholds=_thresholds(tmp, labels))


def _thresholds(folder: Path, labels: list[str]) -> list[float] | None:
    """The training thresholds, for int8's flag agreement (a base model has none)."""
    path = folder / "thresholds.json"
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        return [float(saved[n]["threshold"]) for n in labels]
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(
            f"{path} is not the thresholds file python -m train writes ({e!r}); retrain, or "
            "delete it to export without flags"
        ) from None


def _plain_variants(checker, tmp: Path, record: dict, *, optimized: bool, fp16: bool) -> None:
    """fp32 (nothing is written if it fails), optimized and fp16, each within its parity limit."""
    steps = [("fp32", lambda: tmp / VARIANT_FILES["fp32"], "cpu", None)]
    if optimized:
        steps.append(
            ("optimized", lambda: convert.optimize(tmp, for_gpu=False, fp16=False), "cpu", None)
        )
    if fp16:
        io = {"io": "int64 inputs, float32 logits (fp16 inside)"}
        steps.append(("fp16", lambda: convert.optimize(tmp, for_gpu=True, fp16=True), "cuda", io))
    for name, make, provider, extra in steps:
        path = make()
        entry, _ = checker.check(name, path, provider, extra)
        _log(name, entry)
        if entry["max_abs_diff"] <= entry["limit"]:  # inf (NaN or inf output) never passes
            record["variants"][name] = entry
            continue
        path.unlink()
        entry["why"] = f"parity failed for {name} ({_gap(entry)} > {entry['limit']:.0e})"
        record["failed"][name] = entry
        if name == "fp32":  # nothing else can be trusted: write nothing
            raise ParityError(f"{entry['why']}; no ONNX model was written")


def resolve_bf16(requested: bool | None, flags: frozenset[str]) -> bool:
    """Whether to check the bf16 variant: by default where this CPU runs bf16 in hardware, the
    only place its figures mean anything (elsewhere OpenVINO quietly runs fp32)."""
    if requested and not bf16_flag(flags):
        raise UserError(
            f"--bf16 needs a CPU that runs bf16 in hardware to check it and {NO_BF16}; export on "
            "a CPU with avx512_bf16 or amx_bf16, or pass --no-bf16"
        )
    return bool(bf16_flag(flags)) if requested is None else requested


def _bf16_variant(checker, tmp: Path, record: dict, limits: Int8Limits) -> None:
    """model.onnx run by OpenVINO in bf16, kept in export.json when within `limits`."""
    path = tmp / VARIANT_FILES["bf16"]
    entry, broken = _check_fidelity(checker, "bf16", path, {"runtime": "openvino"}, limits)
    if not broken:
        record["variants"]["bf16"] = entry
        return
    loosen = LOOSEN.format(name="bf16")
    entry["why"] = f"bf16 (OpenVINO) breaks its fidelity limits: {'; '.join(broken)}; {loosen}"
    record["failed"]["bf16"] = entry


def _check_fidelity(checker, name: str, path: Path, info: dict, limits) -> tuple[dict, list[str]]:
    """A reduced-precision variant's record with its fidelity figures, and the limits it breaks."""
    entry, probs = checker.check(name, path, "cpu", info)
    entry["fidelity"], broken = checker.fidelity(probs, limits)
    entry["fidelity"]["passed"] = not broken  # score's --variant auto reads this
    _log(name, entry)
    return entry, broken


def _first_within_limits(checker, record: dict, name: str, make, holdouts, limits) -> None:
    """Keep the first of `make(holdout)` (-> path, info) within `limits`; else record why not."""
    tried = []
    for holdout in holdouts:
        path, info = make(holdout)
        entry, broken = _check_fidelity(checker, name, path, info, limits)
        tried.append({"fp32_holdout": holdout, "broken": broken})
        if not broken:
            record["variants"][name] = {**entry, "tried": tried}
            return
        log.info("%s with %s held in fp32 breaks its limits: %s", name, holdout, "; ".join(broken))
        path.unlink()
        path.with_suffix(".bin").unlink(missing_ok=True)  # an OpenVINO IR's weights
    entry["tried"] = tried
    entry["why"] = (
        f"{name} (fp32 holdout {holdout}) breaks its fidelity limits: {'; '.join(broken)}; "
        + LOOSEN.format(name=name)
    )
    record["failed"][name] = entry


def _int8_variant(checker, tmp, record, isa: str, holdouts, limits, graph: str) -> None:
    """Quantize with the first fp32 holdout that keeps int8 within `limits`; else refuse it.

    `graph="fused"` quantizes the optimized graph when it was written (fused attention runs
    faster), else the plain one.
    """
    fused = graph == "fused" and "optimized" in record["variants"]
    if graph == "fused" and not fused:
        log.info("int8 from the plain graph: the optimized one was not written")
    source = VARIANT_FILES["optimized" if fused else "fp32"]

    def make(holdout: str):
        return quantize.quantize(tmp, source, VARIANT_FILES["int8"], isa=isa, holdout=holdout)

    _first_within_limits(checker, record, "int8", make, holdouts, limits)


def _int8_static_variant(checker, tmp, record, texts: list[str], holdouts, limits, flags) -> None:
    """NNCF's static int8 of model.onnx (OpenVINO IR), calibrated on `texts`."""
    feeds = quantize_static.calibration_feeds(checker.tokenizer, texts, checker.max_len)

    def make(holdout: str):
        return quantize_static.quantize_static(
            tmp, VARIANT_FILES["fp32"], feeds, holdout=holdout, flags=flags
        )

    _first_within_limits(checker, record, "int8-static", make, holdouts, limits)


def _samples(eval_data, text_column, labels, eval_rows: int, calibration_rows: int):
    """The --eval-data rows to check variants on, and the next rows' texts to calibrate
    int8-static on (kept apart so its check is not flattered); (None, []) without a file."""
    if eval_data is None:
        return None, []
    texts, flags = read_eval_sample(
        eval_data, text_column, labels, eval_rows + calibration_rows, log
    )
    return (texts[:eval_rows], flags[:eval_rows]), texts[eval_rows:]


def _static_skipped(asked: bool, calibration: list[str], eval_data: Path | None) -> dict:
    if not asked:
        return {"int8-static": "turned off with --no-int8-static"}
    if calibration:
        return {}
    if eval_data is None:
        why = "it calibrates on --eval-data rows and no --eval-data was given"
    else:  # asked for a check on the user's rows: say so, it is not what they expect
        why = (
            f"it calibrates on the --eval-data rows past --eval-rows and {eval_data} has none; "
            "lower --eval-rows or pass a larger labelled CSV"
        )
        log.info("int8-static skipped: %s", why)
    return {"int8-static": why}


def _eval_section(checker, record: dict) -> dict:
    """Macro ROC-AUC and the gap per kept variant on the --eval-data sample."""
    section = {"rows": len(checker.texts), "pytorch": {"roc_auc_macro": checker.reference_auc}}
    for name, entry in record["variants"].items():
        section[name] = entry.pop("sample")
        change = section[name].get("roc_auc_change")
        if change is not None:
            log.info(
                "%-11s ROC-AUC macro %.4f (change %+.4f against PyTorch)",
                name,
                section[name]["roc_auc_macro"],
                change,
            )
    for entry in record["failed"].values():
        entry.pop("sample", None)
    return section


def _gap(entry: dict) -> str:
    gap = entry["max_abs_diff"]
    return f"max abs diff {gap:.2e}" if np.isfinite(gap) else "output not finite (NaN or inf)"


def _log(name: str, entry: dict) -> None:
    """One line per check: parity on the parity texts, or int8's fidelity on every text."""
    fidelity = entry.get("fidelity")
    if fidelity is None:
        detail = f"{_gap(entry)} (limit {entry['limit']:.0e})"
    else:
        held = f"{entry['fp32_holdout']} held in fp32; " if "fp32_holdout" in entry else ""
        detail = (
            f"{held}on {fidelity['rows']} texts max abs diff "
            f"{fidelity['max_abs_diff']:.3f}, p99 {fidelity['p99_abs_diff']:.3f}"
        )
        if "flag_agreement_min" in fidelity:
            detail += f", flags agree {fidelity['flag_agreement_min']:.2%} or more per label"
    log.info("%-11s %-22s %7.1f MB  %s", name, entry["file"], entry["size_mb"], detail)


def _resolve_cuda(device: str) -> bool:
    usable = device != "cpu" and cuda_usable()
    if device == "cuda" and not usable:
        raise UserError(
            "--device cuda was asked for but onnxruntime cannot use CUDA here; onnxruntime-gpu "
            'needs CUDA 13 and cuDNN 9: pip install "onnxruntime-gpu[cuda,cudnn]", or pass '
            "--device cpu"
        )
    return usable


def _skipped(fp16: bool, cuda: bool, int8: bool, bf16: bool, flags: frozenset[str]) -> dict:
    skipped = {} if int8 else {"int8": "turned off with --no-int8"}
    if not bf16:
        skipped["bf16"] = (
            "turned off with --no-bf16"
            if bf16_flag(flags)
            else f"{NO_BF16}, so its bf16 could not be checked here; export on such a CPU"
        )
    if fp16:
        return skipped
    why = (
        "no usable CUDA execution provider to check its parity; run python -m export on "
        "a GPU machine"
        if not cuda
        else "turned off with --no-fp16"
    )
    return {**skipped, "fp16": why}


def _axes(path: Path) -> dict:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*graph.input, *graph.output]
    }


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import onnxruntime
    import optimum.version
    import torch
    import transformers

    record = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "optimum": optimum.version.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    for name in ("openvino", "nncf"):  # the OpenVINO variants' runtime and quantizer
        try:
            record[name] = version(name)
        except PackageNotFoundError:  # the GPU visit stages neither
            record[name] = "not installed"
    return record
