"""`run()`: the whole training job, from a labelled CSV to a `save_pretrained` folder."""

from __future__ import annotations

import copy
import logging
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

from common.errors import UserError
from common.labelled import LabelledData, read_labelled_csv
from common.writes import check_target, staged_folder
from train import loop, report, summary
from train.metrics import best_f1_thresholds, roc_auc_report
from train.model import check_model_arg, load_model, load_tokenizer
from train.tokens import encode

log = logging.getLogger("train")

FRESH_HEAD_LR = 1e-3


def run(
    *,
    data: Path,
    out: Path,
    model: str,
    text_column: str,
    labels: list[str],
    drop_unlabeled: bool = False,
    max_len: int = 128,
    device: str = "auto",
    lr: float = 2e-5,
    head_lr: float | None = None,
    warmup_ratio: float = 0.0,
    epochs: int = 3,
    batch_size: int = 32,
    val_fraction: float = 0.1,
    seed: int = 42,
    limit: int | None = None,
    max_steps: int | None = None,
    eval_data: Path | None = None,
    force: bool = False,
) -> dict:
    """Train, validate each epoch, keep the best epoch, and write the output folder."""
    check_target(out, force, folder=True)
    check_model_arg(model)
    if len(set(labels)) != len(labels):
        raise UserError(f"--labels has a repeated name ({', '.join(labels)}); list each once")
    train_set = read_labelled_csv(data, text_column, labels, drop_unlabeled, limit)
    eval_set = (
        read_labelled_csv(eval_data, text_column, labels, drop_unlabeled, flag="--eval-data")
        if eval_data
        else None
    )
    if len(train_set.texts) < 2:
        raise UserError(f"{data} has {len(train_set.texts)} row; training needs at least 2")
    _seed_everything(seed)
    precision = loop.choose_precision(device)

    tokenizer = load_tokenizer(model)
    start = time.perf_counter()
    encoded = encode(tokenizer, train_set.texts, max_len)
    tok_seconds = time.perf_counter() - start
    log.info(
        "tokenized %s comments in %.2f s (%.0f comments/s)",
        f"{len(train_set.texts):,}",
        tok_seconds,
        len(train_set.texts) / tok_seconds,
    )
    data_summary = summary.data_summary(
        train_set.labels,
        labels,
        encoded.full_lengths,
        max_len,
        train_set.empty_texts,
        train_set.dropped_unlabeled,
    )
    data_summary["tokenize_seconds"] = tok_seconds
    summary_text = summary.format_summary(data_summary)
    print(summary_text, flush=True)

    train_rows, val_rows = _split(len(train_set.texts), val_fraction, seed)
    net, head_trained = load_model(model, labels)
    head_lr = _prepare_head(net, head_trained, head_lr, lr, train_set.labels[train_rows], model)
    net = net.to(precision.device)
    result = _fit(
        net,
        encoded,
        train_set.labels,
        train_rows,
        val_rows,
        precision=precision,
        lr=lr,
        head_lr=head_lr,
        warmup_ratio=warmup_ratio,
        epochs=epochs,
        batch_size=batch_size,
        pad_id=tokenizer.pad_token_id,
        seed=seed,
        max_steps=max_steps,
    )
    net.load_state_dict(result["best_state"])
    thresholds = best_f1_thresholds(result["val_labels"], result["val_probs"], labels)
    eval_metrics = (
        _evaluate(net, tokenizer, eval_set, max_len, precision, batch_size) if eval_set else None
    )
    print(report.format_stats(result["epochs"]), flush=True)

    args = {
        "data": str(data),
        "model": model,
        "text_column": text_column,
        "labels": labels,
        "drop_unlabeled": drop_unlabeled,
        "max_len": max_len,
        "device": str(precision.device),
        "precision": precision.name,
        "lr": lr,
        "head_lr": head_lr,
        "warmup_ratio": warmup_ratio,
        "epochs": epochs,
        "batch_size": batch_size,
        "val_fraction": val_fraction,
        "seed": seed,
        "limit": limit,
        "max_steps": max_steps,
        "eval_data": str(eval_data) if eval_data else None,
        "train_rows": len(train_rows),
        "val_rows": len(val_rows),
        "versions": _versions(),
    }
    metrics = {
        "best_epoch": result["best"]["epoch"],
        "validation": result["best"],
        "epochs": result["epochs"],
        "eval": eval_metrics,
    }
    with staged_folder(out) as tmp:
        tokenizer.model_max_length = max_len  # downstream stages read the length from here
        net.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        report.dump_json(thresholds, tmp / "thresholds.json")
        report.dump_json(args, tmp / "training_args.json")
        report.dump_json(metrics, tmp / "metrics.json")
        report.dump_json(data_summary, tmp / "data_summary.json")
        report.write_stats(result["epochs"], tmp)
        summary.plot_labels(data_summary, tmp / "label_distribution.png")
        summary.plot_lengths(encoded.full_lengths, max_len, tmp / "token_lengths.png")
        report.write_report(
            tmp,
            args=args,
            summary_text=summary_text,
            epochs=result["epochs"],
            best=result["best"],
            thresholds=thresholds,
            eval_metrics=eval_metrics,
        )
    log.info(
        "wrote %s (best epoch %d, valid ROC-AUC macro %.4f)",
        out,
        result["best"]["epoch"],
        result["best"]["roc_auc_macro"],
    )
    return metrics


def _fit(
    net,
    encoded,
    label_array,
    train_rows,
    val_rows,
    *,
    precision,
    lr,
    head_lr,
    warmup_ratio,
    epochs,
    batch_size,
    pad_id,
    seed,
    max_steps,
) -> dict:
    """All epochs; keeps a CPU copy of the best epoch's weights (by validation macro ROC-AUC)."""
    train_ids = [encoded.input_ids[r] for r in train_rows]
    train_lengths = np.asarray([len(x) for x in train_ids])
    val_ids = [encoded.input_ids[r] for r in val_rows]
    val_lengths = np.asarray([len(x) for x in val_ids])
    val_labels = label_array[val_rows]
    steps_per_epoch = -(-len(train_rows) // batch_size)
    total = (
        steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    )
    optimizer, scheduler = loop.make_optimizer(
        net, lr, head_lr, total, warmup_ratio, precision.device
    )
    rng = np.random.default_rng(seed)
    epochs_done, best, remaining = [], None, total
    for epoch in range(1, epochs + 1):
        if remaining <= 0:
            break
        stats = loop.train_one_epoch(
            net,
            train_ids,
            label_array[train_rows],
            train_lengths,
            optimizer=optimizer,
            scheduler=scheduler,
            precision=precision,
            batch_size=batch_size,
            pad_id=pad_id,
            rng=rng,
            max_steps=remaining,
            epoch=epoch,
        )
        remaining -= stats["steps"]
        start = time.perf_counter()
        logits = loop.predict_logits(
            net, val_ids, val_lengths, precision=precision, batch_size=batch_size, pad_id=pad_id
        )
        valid_loss, probs = loop.loss_and_probs(logits, val_labels)
        row = {
            "epoch": epoch,
            **stats,
            "valid_loss": valid_loss,
            **roc_auc_report(val_labels, probs, list(net.config.label2id)),
            "valid_time_s": time.perf_counter() - start,
        }
        epochs_done.append(row)
        log.info(
            "epoch %d train loss %.4f valid loss %.4f ROC-AUC macro %.4f %.0f samples/s",
            epoch,
            row["train_loss"],
            valid_loss,
            row["roc_auc_macro"],
            row["train_samples_per_s"],
        )
        if best is None or _better(row, best):
            best = row
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
            best_probs = probs
    return {
        "epochs": epochs_done,
        "best": copy.deepcopy(best),
        "best_state": best_state,
        "val_probs": best_probs,
        "val_labels": val_labels,
    }


def _prepare_head(net, head_trained: bool, head_lr, lr: float, train_labels, model: str) -> float:
    """Set up the head and return its learning rate: a fresh head starts at the label priors
    and learns fast; a trained one goes on at --lr."""
    if head_trained:
        log.info("%s already has a head for these labels: training continues from it", model)
        return lr if head_lr is None else head_lr
    loop.init_head_bias(net, train_labels)
    return FRESH_HEAD_LR if head_lr is None else head_lr


def _better(row: dict, best: dict) -> bool:
    """Higher macro ROC-AUC wins; without one (a label set with one class), lower loss."""
    a, b = row["roc_auc_macro"], best["roc_auc_macro"]
    if np.isnan(a) or np.isnan(b):
        return row["valid_loss"] < best["valid_loss"]
    return a > b


def _evaluate(net, tokenizer, eval_set: LabelledData, max_len, precision, batch_size) -> dict:
    encoded = encode(tokenizer, eval_set.texts, max_len)
    lengths = np.asarray([len(x) for x in encoded.input_ids])
    logits = loop.predict_logits(
        net,
        encoded.input_ids,
        lengths,
        precision=precision,
        batch_size=batch_size,
        pad_id=tokenizer.pad_token_id,
    )
    loss, probs = loop.loss_and_probs(logits, eval_set.labels)
    metrics = {
        "rows": len(eval_set.texts),
        "loss": loss,
        **roc_auc_report(eval_set.labels, probs, eval_set.label_names),
    }
    log.info("eval ROC-AUC macro %.4f on %d rows", metrics["roc_auc_macro"], metrics["rows"])
    return metrics


def _split(rows: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split, as in the seed notebook (90/10 by default)."""
    order = np.random.default_rng(seed).permutation(rows)
    n_val = min(max(1, round(rows * val_fraction)), rows - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _versions() -> dict:
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
