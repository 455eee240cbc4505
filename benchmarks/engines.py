"""The engines under test: PyTorch (torch_engines.py), each exported variant through the scorer
(onnxruntime, or OpenVINO for bf16), the scorer end to end. Each goes from texts to float32
probabilities, tokenization included: prepared with the texts (untimed), called (timed), then
asked for its probabilities (untimed)."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.targets import engine_name
from benchmarks.torch_engines import (
    InMemoryEngine,
    TorchEngine,
    compiled_precision,
    torch_precisions,
)
from common.batching import TextTokenizer
from common.cpu import cpu_flags
from common.errors import UserError
from common.variants import VARIANTS
from score.model_folder import choose_variant, read_model_folder

# The exported variants each device runs through the scorer, in the table's order.
SCORER_VARIANTS = {d: [n for n, v in VARIANTS.items() if d in v.devices] for d in ("cpu", "cuda")}
# What a session on each device reports as its provider (OpenVINO's names its precision after).
SESSION_PROVIDERS = {
    "cpu": ("CPUExecutionProvider", "OpenVINO CPU"),
    "cuda": ("CUDAExecutionProvider",),
}


class ScorerEngine(InMemoryEngine):
    """One exported variant through the scorer's `Scorer.predict` (its own batching)."""

    def __init__(self, onnx_dir: Path, variant: str, **options):  # provider, batch_size, threads
        from score.predict import Scorer

        start = time.perf_counter()
        self.scorer = Scorer(onnx_dir, variant=variant, **options)
        used = self.scorer.session.get_providers()[0]
        check_provider(f"variant {variant}", options["provider"], self.scorer.provider, used)
        self.name, self.precision = engine_name(variant), variant
        self.arith, self.group = VARIANTS[variant].arith, VARIANTS[variant].runtime
        self.batching = "the scorer's length bucketing"
        self.provider = self.scorer.provider
        startup = round(time.perf_counter() - start, 3)
        self.info = {"variant": self.scorer.variant, "session_provider": used, "startup_s": startup}

    def __call__(self) -> None:
        self.last = self.scorer.predict(self.texts)


# The end-to-end engines score the texts this many times over in one file, so that what a run
# pays once (OpenVINO compiling kernels for each new batch shape, tokenizing the first chunk
# before the model starts) fades as it does in the files users score; their rows/s is per copy.
E2E_COPIES = 10


class EndToEndEngine:
    """`score.run.run`: CSV in, Parquet out, as a user runs it, on E2E_COPIES copies of the
    texts, each call in a new Python process as `python -m score` starts (not in this one, which
    has run PyTorch and torch.compile). Timed by the scorer's own clock, which starts once the
    session is open: the other engines' models are loaded before timing too, and a large job
    pays the load once. `load_s` keeps the rest (process start, imports, session load)."""

    group = "end-to-end"
    batching = "the scorer's (CSV chunks, length bucketing, Parquet writer)"

    def __init__(self, onnx_dir: Path, labels, workdir: Path, *, variant="auto", **options):
        self.labels, self.workdir, self.asked = labels, workdir, options["provider"]
        # score.run.run's arguments; each repeat replaces the last one's output
        self.options = dict(options, model_dir=onnx_dir, variant=variant, quiet=True, force=True)
        self.name = "scorer-end-to-end" + ("" if variant == "auto" else f"-{variant}")
        self.provider, self.precision = self.asked, variant
        self.info, self.own_seconds = {"load_s": []}, None

    @property
    def arith(self) -> str | None:  # known once a run has said which variant it chose
        return VARIANTS[self.precision].arith if self.precision in VARIANTS else None

    def prepare(self, texts: list[str]) -> None:
        if texts is getattr(self, "texts", None):
            return  # the same texts again (the next repeat): the CSV is already written
        self.texts, self.info["load_s"] = texts, []
        # One chunk per copy: the scorer sorts each chunk by length, and a chunk of ten copies
        # would batch equal lengths together, padding less than the variant alone does.
        self.options["chunk_rows"] = len(texts)
        self.csv = self.workdir / f"{self.name}.csv"
        self.parquet = self.workdir / f"{self.name}.parquet"
        self.ids = [f"r{i}" for i in range(len(texts) * E2E_COPIES)]
        pl.DataFrame({"id": self.ids, "comment_text": texts * E2E_COPIES}).write_csv(self.csv)

    def __call__(self) -> None:
        from score.run import run

        start = time.perf_counter()
        summary = in_new_process(run, input_path=self.csv, output_path=self.parquet, **self.options)
        check_provider("the end-to-end run", self.asked, summary["provider"], None)
        self.provider, self.precision = summary["provider"], summary["variant"]
        self.own_seconds = summary["seconds"] / E2E_COPIES  # per copy: rows/s as the others'
        load = time.perf_counter() - start - summary["seconds"]
        self.info.update(variant=summary["variant"], variant_reason=summary["variant_reason"])
        # The output lies in a temporary folder that is gone after the run: keep its name only.
        self.info["summary"] = {**summary, "output": self.parquet.name}
        self.info["load_s"].append(round(load, 3))

    def probs(self) -> np.ndarray:
        frame = pl.read_parquet(self.parquet)
        if frame["id"].to_list() != self.ids:
            raise RuntimeError(f"{self.parquet} lost rows or their order: the scorer has a bug")
        return frame.head(len(self.texts)).select(self.labels).to_numpy().astype(np.float32)


def in_new_process(function, **kwargs):
    """`function(**kwargs)` in a newly spawned Python process; its result, or its exception."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        return pool.submit(function, **kwargs).result()


def check_provider(what: str, asked: str, reported: str, session_provider: str | None) -> None:
    """A session that asked for CUDA and fell back to the CPU must never pass as a GPU figure."""
    if reported != asked or (
        session_provider is not None and not session_provider.startswith(SESSION_PROVIDERS[asked])
    ):
        raise UserError(
            f"onnxruntime ran {what} on {session_provider or reported} although {asked} was "
            "asked for; install onnxruntime-gpu with its CUDA libraries or pass --device cpu"
        )


def make_engines(s, model, tokenizer, export_record: dict, workdir: Path) -> tuple[list, dict]:
    """Every engine of the throughput table in report order, and the engines left out, with why;
    `s` is the run's settings."""
    flags = cpu_flags()  # all of them: the choice rules may name any flag
    max_len, labels = int(export_record["max_length"]), export_record["labels"]
    common = {"max_len": max_len, "batch_size": s.batch_size, "device": s.device}
    arithmetics, left_out = torch_precisions(s.device, flags)
    engines = [TorchEngine(model, tokenizer, padded=True, **common)]
    batcher = TextTokenizer(s.onnx_dir / "tokenizer.json", max_len)  # the scorer's own tokenizer
    engines += [TorchEngine(model, batcher, padded=False, arith=a, **common) for a in arithmetics]
    fastest = compiled_precision(s.device, flags)
    engines.append(TorchEngine(model, batcher, padded=False, arith=fastest, compile=True, **common))
    options = {"provider": s.device, "batch_size": s.batch_size, "threads": s.threads}
    present = [v for v in SCORER_VARIANTS[s.device] if v in export_record["variants"]]
    engines += [ScorerEngine(s.onnx_dir, v, **options) for v in present]
    engines.append(EndToEndEngine(s.onnx_dir, labels, workdir, **options))
    int8 = s.device == "cpu" and "int8" in export_record["variants"]
    if int8 and choose_variant(read_model_folder(s.onnx_dir), "auto", s.device, flags) != "int8":
        # Show what asking for int8 gives end to end where the scorer's `--variant auto` (its own
        # rule, the same facts) picks another variant.
        engines.append(EndToEndEngine(s.onnx_dir, labels, workdir, variant="int8", **options))
    return engines, {f"pytorch-{a}-bucketed": why for a, why in left_out.items()}


def missing_variants(export_record: dict, device: str) -> dict:
    """Variants this device should run that the export folder lacks, with the export's reason."""
    skipped = export_record.get("skipped", {})
    missing = [v for v in SCORER_VARIANTS[device] if v not in export_record["variants"]]
    return {v: skipped.get(v, "not in export.json") for v in missing}
