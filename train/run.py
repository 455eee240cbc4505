"""`run()`: the whole training job, from a labelled CSV to a `save_pretrained` folder."""

from __future__ import annotations

import logging
import platform
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import transformers

from common.errors import UserError
from common.jsonfile import dump_json
from common.labelled import LabelledData, read_labelled_csv
from common.metrics import best_f1_thresholds
from common.writes import check_target, staged_folder, writing
from train import loop, report
from train.batching import Encoded, encode, length_grouped_batches
from train.model import check_model_arg, load_model, load_tokenizer

log = logging.getLogger("train")

FRESH_HEAD_LR = 1e-3


@dataclass(frozen=True)
class Options:
    """One training job, as `python -m train` takes it; training_args.json saves it resolved."""

    data: Path
    out: Path
    model: str
    text_column: str
    labels: list[str]
    drop_unlabeled: bool = False
    max_len: int = 128
    device: str = "auto"
    lr: float = 2e-5
    head_lr: float | None = None  # None: FRESH_HEAD_LR for a fresh head, `lr` for a trained one
    warmup_ratio: float = 0.0
    epochs: int = 3
    batch_size: int = 32
    val_fraction: float = 0.1
    seed: int = 42
    limit: int | None = None
    max_steps: int | None = None
    eval_data: Path | None = None
    force: bool = False


def run(o: Options) -> dict:
    """Train, validate each epoch, keep the best epoch, and write the output folder."""
    check_target(o.out, o.force, folder=True)
    check_model_arg(o.model)
    train_set, eval_set = _read(o)
    random.seed(o.seed)
    np.random.seed(o.seed)
    torch.manual_seed(o.seed)
    precision = loop.choose_precision(o.device)
    tokenizer = load_tokenizer(o.model)
    encoded, data_summary = _encode(tokenizer, train_set, o.max_len)
    split = _split(len(train_set.texts), o.val_fraction, o.seed)
    net, head_trained = load_model(o.model, o.labels)
    head_lr = _prepare_head(net, head_trained, o, train_set.labels[split[0]])
    o = replace(o, device=str(precision.device), head_lr=head_lr)
    net = net.to(precision.device)
    pad_id = tokenizer.pad_token_id
    epochs, best, val_probs = _fit(net, encoded, train_set.labels, split, precision, o, pad_id)
    thresholds = best_f1_thresholds(train_set.labels[split[1]], val_probs, o.labels)
    evaluation = _evaluate(net, tokenizer, eval_set, precision, o) if eval_set else None
    print(report.format_stats(epochs), flush=True)
    metrics = dict(best_epoch=best["epoch"], validation=best, epochs=epochs, eval=evaluation)
    args = _saved_args(o, precision, split)
    _write(o.out, net, tokenizer, args, metrics, thresholds, data_summary, encoded)
    done = "wrote %s (best epoch %d, valid ROC-AUC macro %.4f)"
    log.info(done, o.out, best["epoch"], best["roc_auc_macro"])
    return metrics


def _read(o: Options) -> tuple[LabelledData, LabelledData | None]:
    """The training rows and the --eval-data rows, each problem a UserError naming the file."""
    if len(set(o.labels)) != len(o.labels):
        raise UserError(f"--labels has a repeated name ({', '.join(o.labels)}); list each once")
    train_set = read_labelled_csv(o.data, o.text_column, o.labels, o.drop_unlabeled, o.limit)
    eval_set = o.eval_data and read_labelled_csv(
        o.eval_data, o.text_column, o.labels, o.drop_unlabeled, flag="--eval-data"
    )
    if len(train_set.texts) < 2:
        raise UserError(f"{o.data} has {len(train_set.texts)} row; training needs at least 2")
    return train_set, eval_set


def _encode(tokenizer, train_set: LabelledData, max_len: int) -> tuple[Encoded, dict]:
    """Tokenize the training rows; print and return the data summary."""
    start = time.perf_counter()
    encoded = encode(tokenizer, train_set.texts, max_len)
    seconds = time.perf_counter() - start
    rows = len(train_set.texts)
    log.info(
        "tokenized %s comments in %.2f s (%.0f comments/s)", f"{rows:,}", seconds, rows / seconds
    )
    data_summary = report.data_summary(train_set, encoded.full_lengths, max_len)
    data_summary["tokenize_seconds"] = seconds
    print(report.format_summary(data_summary), flush=True)
    return encoded, data_summary


def _fit(net, encoded: Encoded, label_array, split, precision, o: Options, pad_id: int):
    """All epochs; the best one (by validation macro ROC-AUC) has its weights loaded back at the
    end. Returns the epochs' rows, the best row and the best epoch's validation probabilities."""
    (train_ids, train_labels), (val_ids, val_labels) = (
        ([encoded.input_ids[r] for r in rows], label_array[rows]) for rows in split
    )
    total = -(-len(train_ids) // o.batch_size) * o.epochs
    remaining = total if o.max_steps is None else min(o.max_steps, total)
    steps = loop.make_optimizer(net, o.lr, o.head_lr, remaining, o.warmup_ratio, precision.device)
    rng, lengths = np.random.default_rng(o.seed), np.asarray([len(x) for x in train_ids])
    epochs, best = [], None
    for epoch in range(1, o.epochs + 1):
        if remaining <= 0:
            break
        batches = length_grouped_batches(lengths, o.batch_size, rng)[:remaining]
        stats = loop.train_one_epoch(
            net, train_ids, train_labels, batches, steps, precision, pad_id, epoch
        )
        remaining -= stats["steps"]
        start = time.perf_counter()
        loss, probs, auc = loop.evaluate(net, val_ids, val_labels, precision, o.batch_size, pad_id)
        row = {"epoch": epoch, **stats, "valid_loss": loss, **auc}
        row["valid_time_s"] = time.perf_counter() - start
        epochs.append(row)
        line = "epoch %d train loss %.4f valid loss %.4f ROC-AUC macro %.4f %.0f samples/s"
        keys = ("epoch", "train_loss", "valid_loss", "roc_auc_macro", "train_samples_per_s")
        log.info(line, *(row[k] for k in keys))
        if best is None or _better(row, best):
            best, best_probs = row, probs
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    return epochs, best, best_probs


def _prepare_head(net, head_trained: bool, o: Options, train_labels) -> float:
    """Set up the head and return its learning rate: a fresh head starts at the label priors
    and learns fast; a trained one goes on at --lr."""
    if head_trained:
        log.info("%s already has a head for these labels: training continues from it", o.model)
        return o.lr if o.head_lr is None else o.head_lr
    loop.init_head_bias(net, train_labels)
    return FRESH_HEAD_LR if o.head_lr is None else o.head_lr


def _better(row: dict, best: dict) -> bool:
    """Higher macro ROC-AUC wins; without one (a label set with one class), lower loss."""
    a, b = row["roc_auc_macro"], best["roc_auc_macro"]
    if np.isnan(a) or np.isnan(b):
        return row["valid_loss"] < best["valid_loss"]
    return a > b


def _evaluate(net, tokenizer, eval_set: LabelledData, precision, o: Options) -> dict:
    input_ids = encode(tokenizer, eval_set.texts, o.max_len).input_ids
    pad_id = tokenizer.pad_token_id
    loss, _, auc = loop.evaluate(net, input_ids, eval_set.labels, precision, o.batch_size, pad_id)
    metrics = {"rows": len(eval_set.texts), "loss": loss, **auc}
    log.info("eval ROC-AUC macro %.4f on %d rows", metrics["roc_auc_macro"], metrics["rows"])
    return metrics


def _saved_args(o: Options, precision: loop.Precision, split) -> dict:
    """training_args.json: the options as run (device and head lr resolved), the split, versions."""
    args = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(o).items()}
    del args["out"], args["force"]
    args |= {"precision": precision.name, "train_rows": len(split[0]), "val_rows": len(split[1])}
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    return args | {"versions": versions | {"transformers": transformers.__version__}}


def _write(out: Path, net, tokenizer, args, metrics, thresholds, data_summary, encoded) -> None:
    """The output folder, staged beside `out` and renamed into place when complete."""
    with staged_folder(out) as tmp:
        tokenizer.model_max_length = args["max_len"]  # downstream stages read the length here
        with writing(tmp / "model.safetensors"):  # the weights: the file a full disk stops
            net.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files = {"thresholds": thresholds, "training_args": args, "metrics": metrics}
        for name, content in (files | {"data_summary": data_summary}).items():
            dump_json(content, tmp / f"{name}.json")
        report.write_stats(metrics["epochs"], tmp)
        report.plot_labels(data_summary, tmp / "label_distribution.png")
        report.plot_lengths(encoded.full_lengths, args["max_len"], tmp / "token_lengths.png")
        report.write_report(tmp, args, report.format_summary(data_summary), metrics, thresholds)


def _split(rows: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split, as in the seed notebook (90/10 by default)."""
    order = np.random.default_rng(seed).permutation(rows)
    n_val = min(max(1, round(rows * val_fraction)), rows - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
