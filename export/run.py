"""`run()`: export the trained folder to ONNX, build and check each variant, write export.json."""

from __future__ import annotations

import json
import logging
import platform
import shutil
from pathlib import Path

import numpy as np

from common.cpu import this_cpu
from common.errors import ParityError, UserError
from common.jsonfile import read_json
from common.labelled import read_eval_sample
from common.sessions import cuda_usable
from common.variants import CLS_ONLY, VARIANTS, Limits, precision
from common.writes import check_target, staged_folder, writing
from export import checks, convert, quantize, quantize_static
from export.checker import VariantChecker

log = logging.getLogger("export")

COPIED = ["thresholds.json", "training_args.json", "metrics.json"]
VERSIONED = (
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "onnxruntime-gpu",
    "openvino",
    "nncf",
)
CALIBRATION_ROWS = 300  # int8-static's calibration texts, taken after the checked rows


def run(
    *,
    model_dir: Path,
    out: Path,
    opset: int = 17,
    variants: list[str] | None = None,
    without: tuple[str, ...] = (),
    target_cpu: str = "auto",
    eval_data: Path | None = None,
    eval_rows: int = 2000,
    text_column: str | None = None,
    limits: Limits | None = None,
    force: bool = False,
) -> dict:
    """Export, build and check each variant against PyTorch, and move the folder into place.

    `variants=None` tries every variant this machine can make and leaves out (with a reason in
    export.json) those it cannot make or that break their limits; a named variant that fails
    fails the run. `target_cpu="auto"` quantizes int8 for this CPU. `text_column=None` is the
    one the model was trained on. `without` leaves variants out (the old --no-<variant>).
    """
    config = checks.check_model_dir(model_dir)
    check_target(out, force, folder=True)
    checks.check_opset(opset)
    cpu = this_cpu()
    isa = quantize.isa_for(cpu) if target_cpu == "auto" else target_cpu
    optimizer = checks.optimizer_problem(config)
    tried, left_out = checks.plan(
        variants, cpu.flags, cuda=_cuda(variants), eval_data=eval_data is not None,
        optimizer=optimizer, without=without,
    )  # fmt: skip
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    text_column = text_column or _trained_text_column(model_dir)
    sample, calibration = _samples(eval_data, text_column, labels, eval_rows, tried)
    _uncalibrated(tried, left_out, calibration, eval_data)
    with staged_folder(out) as tmp:
        cls_only = convert.export_onnx(model_dir, tmp, opset)
        for name in COPIED:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, tmp / name)
        checker = make_checker(model_dir, tmp, labels, sample)
        folder = convert.Folder(tmp, isa, cpu.flags)
        folder.calibration = quantize_static.calibration_feeds(checker.tokenizer, calibration)
        record = {"max_length": checker.max_len, "last_layer": CLS_ONLY if cls_only else "whole"}
        record.update(variants={}, failed={})
        for name in tried:
            _make(name, folder, checker, record, limits or Limits())
        _finish(record, left_out, tried, checker, tmp, model_dir, opset, labels)
    named_failures = [v["why"] for n, v in record["failed"].items() if tried[n]]
    if named_failures:
        raise ParityError(
            f"{'; '.join(named_failures)}: not written to {out}; the other variants were"
        )
    return record


def _cuda(variants: list[str] | None) -> bool:
    """Whether CUDA can check fp16 here; probed only when fp16 could be tried."""
    return (variants is None or "fp16" in variants) and cuda_usable()


def _trained_text_column(model_dir: Path) -> str:
    """The text column the model was trained on (training_args.json), else Jigsaw's."""
    path = model_dir / "training_args.json"
    saved = read_json(path, "retrain, or delete it") if path.is_file() else {}
    return saved.get("text_column") or "comment_text"


def _make(name: str, folder: convert.Folder, checker, record: dict, limits: Limits) -> None:
    """Build `name` with the first holdout that keeps it within its limits; record the entry
    under "variants", or under "failed" with why. fp32 failing writes nothing at all."""
    tried = []
    for holdout in convert.holdouts(name):
        with writing(folder.path / VARIANTS[name].file):  # a full disk names the variant's file
            path, info = convert.BUILDERS[name](folder, holdout)
        entry, probs = checker.check(name, path, VARIANTS[name].devices[0], folder.flags)
        entry.update(info, runtime=VARIANTS[name].runtime, precision=precision(name, folder.flags))
        broken = _broken(name, entry, probs, checker, limits)
        _log(name, entry)
        if holdout is not None:
            tried.append({"fp32_holdout": holdout, "broken": broken})
            entry["tried"] = list(tried)
        if not broken:
            record["variants"][name] = entry
            folder.written.add(name)
            return
        if path.name != VARIANTS["fp32"].file:  # bf16 runs model.onnx itself: keep it
            path.unlink()
            path.with_suffix(".bin").unlink(missing_ok=True)  # an OpenVINO IR's weights
    held = f" (fp32 holdout {holdout})" if holdout else ""
    entry["why"] = f"{name}{held} breaks its limits: {'; '.join(broken)}"
    if name == "fp32":  # nothing else can be trusted: write nothing
        raise ParityError(f"{entry['why']}; no ONNX model was written")
    record["failed"][name] = entry


def _broken(name: str, entry: dict, probs: dict, checker, limits: Limits) -> list[str]:
    """The limits a variant breaks: its parity limit, or the fidelity limits if reduced."""
    if not VARIANTS[name].reduced:
        limit = entry["limit"]  # inf (NaN or inf output) never passes
        return [] if entry["max_abs_diff"] <= limit else [f"{_gap(entry)} > {limit:.0e}"]
    entry["fidelity"], broken = checker.fidelity(probs, limits)
    entry["fidelity"]["passed"] = not broken  # score's --variant auto reads this
    return broken


def _finish(record, left_out, tried, checker, tmp: Path, model_dir, opset, labels) -> None:
    """Left-out variants with their reasons, the eval section, versions; export.json."""
    for name, entry in record["failed"].items():
        if not tried[name]:
            log.warning("%s left out: %s (its figures: export.json, failed)", name, entry["why"])
            left_out[name] = entry["why"]
    if checker.texts:
        record["eval"] = _eval_section(checker, record)
    record.update(
        source=str(model_dir),
        opset=opset,
        labels=labels,
        skipped=left_out,
        versions=_versions(),
        axes=_axes(tmp / VARIANTS["fp32"].file),
    )
    (tmp / "export.json").write_text(json.dumps(record, indent=2) + "\n")


def make_checker(model_dir: Path, tmp: Path, labels: list[str], sample) -> VariantChecker:
    """The PyTorch model, loaded once for every check, and the exported tokenizer."""
    from transformers import AutoModelForSequenceClassification

    config = read_json(tmp / "tokenizer_config.json", "re-export")
    max_len = int(config["model_max_length"])
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    return VariantChecker(
        tmp / "tokenizer.json", max_len, model, sample=sample, thresholds=_thresholds(tmp, labels)
    )


def _uncalibrated(tried: dict, left_out: dict, calibration: list, eval_data) -> None:
    """int8-static with no rows to calibrate on: refused when named, else left out."""
    if "int8-static" not in tried or calibration:
        return
    why = f"{eval_data.name} has too few labelled rows to calibrate it on; {checks.EVAL_HINT}"
    if tried.pop("int8-static"):
        raise UserError(f"--variants int8-static: {why}")
    left_out["int8-static"] = why
    log.warning("int8-static left out: %s", why)


def _samples(eval_data, text_column: str, labels, eval_rows: int, tried: dict):
    """The --eval-data rows to check variants on and the next rows' texts to calibrate
    int8-static on (kept apart so its check is not flattered); (None, []) without a file.
    A file with fewer rows than both need is split, and the log says how."""
    if eval_data is None:
        return None, []
    wanted = CALIBRATION_ROWS if "int8-static" in tried else 0
    texts, flags = read_eval_sample(eval_data, text_column, labels, eval_rows + wanted, log)
    calibrate = min(wanted, max(len(texts) - eval_rows, len(texts) // 5))
    checked = min(eval_rows, len(texts) - calibrate)
    if wanted and len(texts) < eval_rows + wanted:  # a split the user did not ask for: say it
        log.warning(
            "%s has %d labelled rows, fewer than --eval-rows %d + %d to calibrate int8-static: "
            "checking on the first %d, calibrating on the next %d",
            eval_data.name, len(texts), eval_rows, wanted, checked, calibrate,
        )  # fmt: skip
    return (texts[:checked], flags[:checked]), texts[checked : checked + calibrate]


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


def _eval_section(checker, record: dict) -> dict:
    """Macro ROC-AUC and the gap per kept variant on the --eval-data sample."""
    section = {"rows": len(checker.texts), "pytorch": {"roc_auc_macro": checker.reference_auc}}
    for name, entry in record["variants"].items():
        section[name] = entry.pop("sample")
        change = section[name].get("roc_auc_change")
        if change is not None:
            auc = section[name]["roc_auc_macro"]
            log.info("%-11s ROC-AUC macro %.4f (change %+.4f against PyTorch)", name, auc, change)
    for entry in record["failed"].values():
        entry.pop("sample", None)
    return section


def _gap(entry: dict) -> str:
    gap = entry["max_abs_diff"]
    return f"max abs diff {gap:.2e}" if np.isfinite(gap) else "output not finite (NaN or inf)"


def _log(name: str, entry: dict) -> None:
    """One line per check: parity on the parity texts and the width batches, or a reduced
    variant's fidelity on every text (its largest gap on the width batches too)."""
    fidelity = entry.get("fidelity")
    if fidelity is None:
        detail = f"{_gap(entry)} (limit {entry['limit']:.0e})"
    else:
        held = f"{entry['fp32_holdout']} held in fp32; " if "fp32_holdout" in entry else ""
        detail = (
            f"{held}on {fidelity['rows']} texts and {fidelity['batch_widths']} batch widths "
            "max abs diff "
            f"{fidelity['max_abs_diff']:.3f}, p99 {fidelity['p99_abs_diff']:.3f}"
        )
        if "flag_agreement_min" in fidelity:
            detail += f", flags agree {fidelity['flag_agreement_min']:.2%} or more per label"
    log.info("%-11s %-22s %7.1f MB  %s", name, entry["file"], entry["size_mb"], detail)


def _axes(path: Path) -> dict:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*graph.input, *graph.output]
    }


def _versions() -> dict:
    """The versions the variants were built and checked with (the OpenVINO pair may be absent
    on a GPU machine)."""
    from importlib.metadata import PackageNotFoundError, version

    record = {"python": platform.python_version()}
    for package in VERSIONED:
        try:
            record[package.removesuffix("-gpu")] = version(package)
        except PackageNotFoundError:
            record[package.removesuffix("-gpu")] = "not installed"
    return record
