"""`run()`: load the models once, time every engine on the same texts, score quality, report."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks import ceiling, machine, models, quality, report, targets, timing
from benchmarks import engines as eng
from benchmarks.texts import file_facts, load_texts
from common.batching import batching_for
from common.errors import UserError
from common.labelled import read_eval_sample
from common.metrics import agreement, first_non_finite_row
from common.variants import CLS_ONLY, Limits
from score.model_folder import read_model_folder, read_thresholds

log = logging.getLogger("benchmarks")

DEFAULT_ROWS = {"cpu": 2000, "cuda": 20000}


def run(*, out: Path, command: str, device: str, **options) -> dict:
    """Measure, then write report.md, results.json and throughput.png under out/<machine>/
    (the CPU's name and key ISA, or the card's name); `options` are the rest of the options of
    `python -m benchmarks` (None: the device's default, generated texts, or no quality)."""
    s = SimpleNamespace(command=command, device=resolve_device(device), **options)
    s.eval_data, notes = _eval_source(s.eval_data, s.command, s.bert_base)
    s.rows = s.rows or DEFAULT_ROWS[s.device]
    s.batch_size = batching_for(s.device, s.batch_size).size  # the scorer's default
    s.threads = s.threads or machine.usable_cores()
    # Cheap things first: a bad folder or CSV fails before any model is built or loaded.
    if not s.bert_base:
        models.check_folders(s.model_dir, s.onnx_dir)
    timed = load_texts(s.texts, s.rows, s.text_column, s.seed) if s.command != "quality" else None
    with tempfile.TemporaryDirectory(prefix="benchmarks-") as tmp:
        if s.bert_base:
            s.model_dir, s.onnx_dir = models.build_and_export_bert_base(Path(tmp))
        record = _measure(s, timed, Path(tmp))
    record["notes"] = notes
    record["targets"] = targets.check(record)
    folder = out / machine.results_dir_name(record["env"])
    report.write(folder, record)
    log.info("wrote %s", folder)
    return record


def _measure(s: SimpleNamespace, timed: tuple | None, workdir: Path) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    export_record = models.check_folders(s.model_dir, s.onnx_dir)
    labels = export_record["labels"]
    sample = None
    if s.eval_data:
        sample = read_eval_sample(s.eval_data, s.text_column, labels, s.eval_rows, log)
    if s.device == "cpu":
        torch.set_num_threads(s.threads)
    env = machine.describe(s.device, s.threads)
    log.info("device %s (%s), %d threads", s.device, env.get("gpu", env["cpu"]), s.threads)
    model = AutoModelForSequenceClassification.from_pretrained(s.model_dir).eval().to(s.device)
    tokenizer = AutoTokenizer.from_pretrained(s.onnx_dir)
    built, left_out = eng.make_engines(s, model, tokenizer, export_record, workdir)
    settings = {
        # Inputs by name only: results must not carry the paths of the machine they ran on.
        **{k: v.resolve().name if isinstance(v, Path) else v for k, v in vars(s).items()},
        "max_length": int(export_record["max_length"]),
    }
    if s.bert_base:
        settings.update(model_dir="(temporary)", onnx_dir="(temporary)")
    record = {
        "settings": settings,
        "model": models.describe_model(model),
        "export": {
            k: export_record.get(k) for k in ("last_layer", "variants", "skipped", "versions")
        },
        "missing_variants": eng.missing_variants(export_record, s.device),
        "left_out": left_out,
    }
    if timed is not None:
        record["texts"] = timed[1]
        # The model's flag thresholds: export copies thresholds.json where training wrote one.
        has_cut = (s.onnx_dir / "thresholds.json").is_file()
        cut = read_thresholds(read_model_folder(s.onnx_dir)) if has_cut else None
        cls_only = export_record.get("last_layer") == CLS_ONLY
        record["throughput"] = _throughput(
            built, timed[0], tokenizer, settings, model.config, cut, cls_only
        )
    if sample is not None:
        scored = [e for e in built if e.group != "end-to-end" and e.name != targets.SEED]
        record["quality"] = {**quality.evaluate(scored, *sample, labels), **file_facts(s.eval_data)}
    env["busy_after"] = machine.busy_cpus()
    record["env"] = env
    return record


def _throughput(
    built: list, texts: list[str], tokenizer, settings: dict, config, cut, cls_only: bool
) -> dict:
    """Every engine timed on the same texts, its fidelity to PyTorch fp32 (held to the limits
    export holds the reduced variants to, flags at the thresholds `cut`), and the ceilings."""
    batch_size, device = settings["batch_size"], settings["device"]
    batching = batching_for(device, batch_size)
    profile = timing.token_profile(tokenizer, texts, settings["max_length"], batching)
    timing.warm_up(built, texts, rows=4 * batch_size)
    started = time.time()
    seconds = timing.time_engines(built, texts, settings["repeats"], device)
    reference = reference_probs(built)
    table = {
        e.name: {
            **{k: getattr(e, k) for k in ("group", "precision", "arith", "batching", "provider")},
            **e.info,
            **timing.summarize(seconds[e.name], len(texts), profile["tokens"]),
            **fidelity(reference, e.probs(), cut),
        }
        for e in built
    }
    wall_s = round(time.time() - started, 1)
    tokens, batches = profile["tokens"], profile["batches"]
    limit = ceiling.measure(
        config, device, tokens, len(texts), batches, table, settings["threads"], cls_only
    )
    return {"engines": table, "profile": profile, "wall_s": wall_s, "ceiling": limit}


def reference_probs(built: list) -> np.ndarray:
    """PyTorch fp32's probabilities, which every engine is compared with; they must be finite."""
    reference = next(e for e in built if e.name == quality.REFERENCE).probs()
    if (bad := first_non_finite_row(reference)) is not None:
        raise UserError(
            f"PyTorch fp32 ({quality.REFERENCE}) gives NaN or inf for text {bad}: the model is "
            "broken; pass --model with a model trained without NaN weights"
        )
    return reference


def fidelity(reference: np.ndarray, probs: np.ndarray, thresholds=None) -> dict:
    """The finite-and-close rule (inf gap on NaN; non-finite = failed), then the fidelity
    figures and the limits (common.variants.Limits) they break, as export checks a variant."""
    bad = first_non_finite_row(probs)
    figures = {**agreement(reference, probs, thresholds), "sample_rows": len(reference)}
    return {
        **{k: figures.get(k) for k in ("max_abs_diff", "p99_abs_diff", "flag_agreement_min")},
        "limits_broken": Limits().broken(figures),
        "failed": None if bad is None else f"NaN or inf probabilities (first at text {bad})",
    }


def _eval_source(eval_data: Path | None, command: str, bert_base: bool):
    """The labelled CSV, or None with the reason quality is skipped."""
    if command == "throughput":
        return None, []
    if bert_base:
        return None, ["quality skipped: the --bert-base model has random weights"]
    if eval_data is None:
        if command == "quality":
            raise UserError("quality needs a labelled CSV; pass --eval-data")
        return None, ["quality skipped: no labelled CSV (pass --eval-data)"]
    return eval_data, []


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "--device cuda was asked for but torch sees no CUDA device; run on a GPU machine "
            "or pass --device cpu"
        )
    return device
