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
    """`bert-base`: BertConfig(), random weights; `tiny`: 2 layers of 32 (as tests/conftest.py),
    max length 64 so the CPU dry run stays fast."""
    from benchmarks.models import build_bert_base, build_random_bert
    from common.labelled import JIGSAW_LABELS

    labels = list(JIGSAW_LABELS)
    if size == "bert-base":
        return build_bert_base(out, labels)
    tiny = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    return build_random_bert(out, labels, 64, intermediate_size=37, **tiny)


def write_demo_data(folder: Path, rows: int) -> Path:
    """Synthetic labelled rows (train's --demo generator) where the real CSV is absent."""
    from train.demo_data import write_demo

    return write_demo(folder, rows=rows, score_rows=1)
