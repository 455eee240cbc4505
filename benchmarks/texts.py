"""The texts that every engine scores: a seeded sample of real comments, or generated stand-ins;
and how results name an input file."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import polars as pl

from common.errors import UserError

log = logging.getLogger("benchmarks")


# Common words of talk-page comments, for stand-in texts when no real comments are at hand.
_WORDS = (  # noqa: SIM905 (as a list literal, 80 words would take 80 lines)
    "the a to of and is in that it you this for on not be are as with have i was but if "
    "article page edit talk please source wikipedia would can an by what will your there at "
    "all or from my about no so do one they just like think should more been has any which "
    "me also some we other only stop vandalism reverted deleted link citation thanks user "
    "block discussion section image copyright fact people time information here why because"
).split()


def load_texts(path: Path | None, rows: int, text_column: str, seed: int) -> tuple[list, dict]:
    """`rows` comments drawn at random (seeded) from the --texts CSV (null read as empty text), or
    generated ones when `path` is None; a bad CSV is a UserError."""
    if path is None:
        log.info("no --texts: generating %d stand-in texts", rows)
        return generated_texts(rows, seed), {"source": "generated", "rows": rows}
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass --texts with a CSV of comments")
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except pl.exceptions.PolarsError as e:
        raise UserError(f"{path} is not a readable CSV ({type(e).__name__}); fix the file") from e
    if text_column not in frame.columns:
        raise UserError(
            f"{path} has no column {text_column!r} (found: {', '.join(frame.columns)}); "
            "pass --text-column"
        )
    if frame.height == 0:
        raise UserError(f"{path} has no rows; give a CSV with comments")
    texts = frame[text_column].fill_null("").to_list()
    order = np.random.default_rng(seed).permutation(len(texts))
    # More rows than the file holds: repeat the shuffled file (said in the report).
    picked = [texts[i] for i in np.resize(order, rows)]
    facts = {"rows": rows, "rows_in_file": len(texts), "repeated": rows > len(texts), "seed": seed}
    return picked, {**file_facts(path), **facts}


def file_facts(path: Path) -> dict:
    """An input file as results record it: name, size and sha256, never the path given."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"source": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def generated_texts(rows: int, seed: int) -> list[str]:
    """Word salad whose lengths follow real comments, so padding costs what it costs on them.
    MiniLM tokens per text: median 44, p95 ~265, 17% over 128; a 5,000-row sample of Jigsaw's
    train.csv gives 45, 285 and 16%."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(mean=np.log(42), sigma=1.1, size=rows), 1, 4000).astype(int)
    words = np.asarray(_WORDS)
    return [
        " ".join(words[rng.integers(0, len(words), size=n)]).capitalize() + "." for n in lengths
    ]
