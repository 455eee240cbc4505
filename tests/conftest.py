"""Shared fixtures: a tiny random-weight BERT, small Jigsaw-format CSVs and one quick training run.

Everything runs offline on CPU in seconds; later stages (export, score, benchmarks) reuse these.
"""

from __future__ import annotations

import os

# Before transformers is imported anywhere: tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"

import csv
from pathlib import Path

import pytest
import torch

from common.cpu import bf16_flag, cpu_flags
from common.labelled import JIGSAW_LABELS

# One thread: on a small shared machine, torch's default thread pool fights other jobs for the
# cores and a tiny-model step goes from milliseconds to seconds. Runs stay deterministic.
torch.set_num_threads(1)

LABELLED_HEADER = ["id", "comment_text", *JIGSAW_LABELS]
COMMENTS_HEADER = ["id", "comment_text"]
# export checks (and lists) the bf16 variant by default only where this CPU runs bf16 in hardware.
BF16_HERE = {"bf16"} if bf16_flag(cpu_flags()) else set()

# The flags of every quick CPU run: a few steps of the tiny model, a high learning rate so the
# loss visibly falls, and a validation split large enough to hold both classes of `toxic`.
QUICK_TRAIN_FLAGS = [
    "--device",
    "cpu",
    "--epochs",
    "3",
    "--batch-size",
    "8",
    "--lr",
    "1e-3",
    "--max-len",
    "64",
    "--val-fraction",
    "0.25",
    "--seed",
    "42",
]

_TOPICS = [
    "history",
    "geography",
    "football",
    "chemistry",
    "jazz",
    "railways",
    "astronomy",
    "cooking",
]
_CLEAN = [
    "Thanks for fixing the {t} article, the sources look much better now.",
    "I moved the paragraph about {t} to the talk page until we find a citation.",
    "Could someone check the dates in the {t} section against the infobox?",
    "Please discuss major changes to the {t} article here before reverting.",
]
_TOXIC = [
    "You are an idiot, stupid edits to {t} again.",
    "Stupid idiot, stop ruining the {t} page.",
    "What a stupid idiot you are about {t}.",
    "Idiot. Stupid. Leave {t} alone, idiot.",
]


def labelled_rows() -> list[list]:
    """About 70 rows in Jigsaw order (id, comment_text, six labels), easily separable.

    Toxic rows say "idiot" and "stupid" and are toxic + insult (a few also obscene); clean rows
    are about editing articles. Edge cases: an empty comment, a null comment (None, written as
    an empty unquoted field), non-ASCII text and emoji, a quoted field with an embedded newline
    and quotes, and a duplicate id.
    """
    rows = []
    for i in range(32):
        topic = _TOPICS[i % len(_TOPICS)]
        rows.append([f"c{i:04d}", _CLEAN[i % len(_CLEAN)].format(t=topic), 0, 0, 0, 0, 0, 0])
        obscene = int(i % 4 == 0)
        rows.append([f"t{i:04d}", _TOXIC[i % len(_TOXIC)].format(t=topic), 1, 0, obscene, 0, 1, 0])
    rows += [
        ["e0001", "", 0, 0, 0, 0, 0, 0],
        ["e0002", None, 0, 0, 0, 0, 0, 0],
        ["e0003", "Merci pour la correction sur Zürich 🙂, très bien.", 0, 0, 0, 0, 0, 0],
        ["e0004", "Ты idiot, stupid 🤬 — 你是白痴", 1, 0, 0, 0, 1, 0],
        ["e0005", 'He wrote "see the talk page",\nthen reverted "history".', 0, 0, 0, 0, 0, 0],
        ["e0005", "Duplicate id, same as the row above, stupid idiot.", 1, 0, 0, 0, 1, 0],
    ]  # fmt: skip
    return rows


def comment_rows() -> list[list]:
    """About 20 unlabelled rows (id, comment_text) with the same edge cases as `labelled_rows`."""
    rows = [
        [f"s{i:04d}", (_CLEAN if i % 2 else _TOXIC)[i % 4].format(t=_TOPICS[i % len(_TOPICS)])]
        for i in range(14)
    ]
    rows += [
        ["s0100", ""],
        ["s0101", "Straße, café, naïve 🙂 — 谢谢你修改这篇文章"],
        ["s0102", 'A "quoted" word,\nand a second line\nand a third, "stupid idiot".'],
        ["s0103", "   "],
        ["s0104", "first of two rows with the same id"],
        ["s0104", "second of two rows with the same id, you idiot"],
    ]
    return rows


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    """Write rows as the Jigsaw files are written: minimal quoting, "\\n" line ends.

    A field of None becomes an empty unquoted field (polars reads it as null); a row holding an
    empty string is written with every field quoted, since minimal quoting cannot tell "" apart.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        plain = csv.writer(f, lineterminator="\n")
        quoted = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL)
        plain.writerow(header)
        for row in rows:
            (quoted if "" in row else plain).writerow(row)
    return path


def write_labelled_csv(
    path: Path, rows: list[list] | None = None, header: list[str] | None = None
) -> Path:
    """A labelled CSV at `path`: `labelled_rows()` unless other rows (or a header) are given."""
    return write_csv(
        path,
        LABELLED_HEADER if header is None else header,
        labelled_rows() if rows is None else rows,
    )


def write_comments_csv(path: Path, rows: list[list] | None = None) -> Path:
    return write_csv(path, COMMENTS_HEADER, comment_rows() if rows is None else rows)


@pytest.fixture
def labelled_csv(tmp_path: Path) -> Path:
    return write_labelled_csv(tmp_path / "labelled.csv")


@pytest.fixture
def comments_csv(tmp_path: Path) -> Path:
    return write_comments_csv(tmp_path / "comments.csv")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight 2-layer BERT (hidden size 32) with the default model's tokenizer."""
    from benchmarks.models import build_bert

    sizes = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}
    return build_bert(
        tmp_path_factory.mktemp("tiny-bert"), list(JIGSAW_LABELS), hidden_size=32, **sizes
    )


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny model after one quick run of `python -m train` (QUICK_TRAIN_FLAGS, max-len 64).

    Also scored on a separate `--eval-data` CSV, so metrics.json has an "eval" section.
    """
    from train.__main__ import main

    root = tmp_path_factory.mktemp("trained")
    data = write_labelled_csv(root / "train.csv")
    eval_rows = [r for r in labelled_rows() if r[0].endswith(("1", "3", "5"))]
    eval_data = write_labelled_csv(root / "eval.csv", eval_rows)
    out = root / "model"
    argv = ["--data", str(data), "--eval-data", str(eval_data), "--model", str(tiny_model_dir)]
    assert main([*argv, *QUICK_TRAIN_FLAGS, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny model as a default `python -m export` writes it: optimized, int8, and bf16 where
    this CPU has bf16 hardware (fp16 where CUDA is usable; no int8-static: no --eval-data)."""
    from export.run import run as export

    out = tmp_path_factory.mktemp("score-export") / "onnx"
    export(model_dir=tiny_model_dir, out=out, force=True)
    return out


@pytest.fixture(scope="session")
def cuda_onnx_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny model exported with `--variants optimized,fp16`, so the fp16 variant is written
    with its parity checked on CUDA (a named variant: no CUDA fails the export). For `gpu` tests."""
    from export.run import run as export

    out = tmp_path_factory.mktemp("cuda-export") / "onnx"
    export(model_dir=tiny_model_dir, out=out, variants=["optimized", "fp16"], force=True)
    return out


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`gpu` tests: skipped in a plain run without CUDA, failed when asked for (`-m gpu`).

    So `pytest -m gpu` cannot pass on a broken CUDA stack by skipping.
    """
    if item.get_closest_marker("gpu") is None:
        return
    from common.sessions import cuda_usable

    if cuda_usable() and torch.cuda.is_available():  # onnxruntime's CUDA and torch's
        return
    asked = "gpu" in (item.config.option.markexpr or "").replace("not gpu", "")
    message = "onnxruntime or torch cannot use CUDA here (see common.sessions.CUDA_FIX)"
    if asked:
        pytest.fail(f"-m gpu was asked for but {message}", pytrace=False)
    pytest.skip(message)
