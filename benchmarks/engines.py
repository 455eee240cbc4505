"""The engines under test: PyTorch loops, onnxruntime through the scorer, the scorer end to end.

Every engine goes from a list of texts to float32 probabilities, tokenization included. It is
prepared with the texts (untimed), called (timed), then asked for its probabilities (untimed).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from benchmarks.errors import UserError

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
ORT_VARIANTS = {"cpu": ["fp32", "optimized", "int8"], "cuda": ["fp32", "optimized", "fp16"]}
ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def bucket_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Sort by token length and cut into batches, so each pads only to its own longest text."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class TorchEngine:
    """PyTorch eager: the seed's loop (padded, input order) or the scorer's length bucketing."""

    group = "pytorch"

    def __init__(self, model, tokenizer, *, max_len, batch_size, device, padded, autocast=None):
        self.model, self.tokenizer = model, tokenizer
        self.max_len, self.batch_size, self.device = max_len, batch_size, device
        self.padded, self.autocast = padded, autocast
        self.precision = f"{autocast} autocast" if autocast else "fp32"
        style = "padded" if padded else "bucketed"
        self.name = f"pytorch-{autocast or 'fp32'}-{style}"
        self.batching = (
            f"padded to {max_len}, input order, one encode_plus per text (the seed's loop)"
            if padded
            else "sorted by token length, padded to each batch's longest"
        )
        self.provider, self.info = device, {}

    def prepare(self, texts: list[str]) -> None:
        self.texts, self.last = texts, None

    def __call__(self) -> None:
        self.last = self._padded(self.texts) if self.padded else self._bucketed(self.texts)

    def probs(self) -> np.ndarray:
        return self.last

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        cast = (
            torch.autocast("cuda", dtype=AUTOCAST[self.autocast])
            if self.autocast
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), cast:
            logits = self.model(
                input_ids=ids.to(self.device, non_blocking=True),
                attention_mask=mask.to(self.device, non_blocking=True),
            ).logits
        return torch.sigmoid(logits.float()).cpu().numpy()

    def _padded(self, texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.batch_size):
            encoded = [
                self.tokenizer.encode_plus(
                    text, max_length=self.max_len, padding="max_length", truncation=True
                )
                for text in texts[start : start + self.batch_size]
            ]
            ids = torch.tensor([e["input_ids"] for e in encoded])
            mask = torch.tensor([e["attention_mask"] for e in encoded])
            out.append(self._forward(ids, mask))
        return np.concatenate(out)

    def _bucketed(self, texts: list[str]) -> np.ndarray:
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_len)["input_ids"]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        out = None
        pad = self.tokenizer.pad_token_id
        for rows in bucket_batches(lengths, self.batch_size):
            width = int(lengths[rows].max())
            if self.device == "cuda":
                width = -(-width // 8) * 8  # as the scorer pads on CUDA: the same batches
            batch = np.full((len(rows), width), pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, r in enumerate(rows):
                batch[i, : lengths[r]] = ids[r]
                mask[i, : lengths[r]] = 1
            part = self._forward(torch.from_numpy(batch), torch.from_numpy(mask))
            if out is None:
                out = np.empty((len(texts), part.shape[1]), dtype=np.float32)
            out[rows] = part
        return out


class ScorerEngine:
    """One exported variant through the scorer's `Scorer.predict` (its own batching)."""

    group = "onnxruntime"

    def __init__(self, onnx_dir: Path, variant: str, *, provider, batch_size, threads):
        from score.predict import Scorer

        start = time.perf_counter()
        self.scorer = Scorer(
            onnx_dir, variant=variant, provider=provider, batch_size=batch_size, threads=threads
        )
        used = self.scorer.session.get_providers()[0]
        check_provider(f"variant {variant}", provider, self.scorer.provider, used)
        self.name, self.precision = f"onnxruntime-{variant}", variant
        self.batching = "the scorer's length bucketing"
        self.provider = self.scorer.provider
        self.info = {
            "variant": self.scorer.variant,
            "session_provider": used,
            "startup_s": round(time.perf_counter() - start, 3),
        }

    def prepare(self, texts: list[str]) -> None:
        self.texts, self.last = texts, None

    def __call__(self) -> None:
        self.last = self.scorer.predict(self.texts)

    def probs(self) -> np.ndarray:
        return self.last


class EndToEndEngine:
    """`score.run.run`: CSV in, Parquet out, as a user runs it.

    Timed by the scorer's own clock, which starts once the session is open: the other engines'
    models are loaded before timing too, and a large job pays the load once. `load_s` keeps it.
    """

    group = "end-to-end"
    batching = "the scorer's (CSV chunks, length bucketing, Parquet writer)"

    def __init__(self, onnx_dir: Path, labels: list[str], *, variant="auto", **options):
        self.onnx_dir, self.labels, self.variant = onnx_dir, labels, variant
        self.asked, self.options = options.pop("provider"), options  # batch_size, threads
        self.workdir = self.options.pop("workdir")
        self.name = "scorer-end-to-end" + ("" if variant == "auto" else f"-{variant}")
        self.provider, self.precision = self.asked, variant
        self.info, self.own_seconds = {"load_s": []}, None

    def prepare(self, texts: list[str]) -> None:
        if texts is getattr(self, "texts", None):
            return  # the same texts again (the next repeat): the CSV is already written
        self.texts, self.info["load_s"] = texts, []
        self.csv = self.workdir / f"{self.name}.csv"
        self.parquet = self.workdir / f"{self.name}.parquet"
        self.ids = [f"r{i}" for i in range(len(texts))]
        pl.DataFrame({"id": self.ids, "comment_text": texts}).write_csv(self.csv)

    def __call__(self) -> None:
        from score.run import run

        start = time.perf_counter()
        summary = run(
            input_path=self.csv,
            output_path=self.parquet,
            model_dir=self.onnx_dir,
            provider=self.asked,
            variant=self.variant,
            quiet=True,
            force=True,  # each repeat replaces the last one's output
            **self.options,
        )
        check_provider("the end-to-end run", self.asked, summary["provider"], None)
        self.provider, self.precision = summary["provider"], summary["variant"]
        self.own_seconds = summary["seconds"]
        load = time.perf_counter() - start - summary["seconds"]
        self.info.update(variant=summary["variant"], summary=summary)
        self.info["load_s"].append(round(load, 3))

    def probs(self) -> np.ndarray:
        frame = pl.read_parquet(self.parquet)
        if frame["id"].to_list() != self.ids:
            raise RuntimeError(f"{self.parquet} lost rows or their order: the scorer has a bug")
        return frame.select(self.labels).to_numpy().astype(np.float32)


def check_provider(what: str, asked: str, reported: str, session_provider: str | None) -> None:
    """A session that asked for CUDA and fell back to the CPU must never pass as a GPU figure."""
    wrong = reported != asked or (
        session_provider is not None and session_provider != ORT_PROVIDERS[asked]
    )
    if wrong:
        raise UserError(
            f"onnxruntime ran {what} on {session_provider or reported} although {asked} was "
            "asked for; install onnxruntime-gpu with its CUDA libraries or pass --device cpu"
        )


def make_engines(
    *, device, model, tokenizer, onnx_dir, export_record, batch_size, threads, workdir
):
    """Every engine of the throughput table, in the order the report lists them."""
    max_len = int(export_record["max_length"])
    common = {"max_len": max_len, "batch_size": batch_size, "device": device}
    engines = [
        TorchEngine(model, tokenizer, padded=True, **common),
        TorchEngine(model, tokenizer, padded=False, **common),
    ]
    if device == "cuda":
        engines += [
            TorchEngine(model, tokenizer, padded=False, autocast=a, **common) for a in AUTOCAST
        ]
    engines += ort_engines(onnx_dir, export_record, device, batch_size, threads)
    options = {"provider": device, "batch_size": batch_size, "threads": threads, "workdir": workdir}
    engines.append(EndToEndEngine(onnx_dir, export_record["labels"], **options))
    if device == "cpu" and "int8" in export_record["variants"]:
        # The scorer never picks int8 by itself: show what asking for it gives end to end.
        engines.append(EndToEndEngine(onnx_dir, export_record["labels"], variant="int8", **options))
    return engines


def ort_engines(onnx_dir, export_record, device, batch_size, threads) -> list[ScorerEngine]:
    present = export_record["variants"]
    return [
        ScorerEngine(onnx_dir, v, provider=device, batch_size=batch_size, threads=threads)
        for v in ORT_VARIANTS[device]
        if v in present
    ]


def missing_variants(export_record: dict, device: str) -> dict:
    """Variants this device should run that the export folder lacks, with the export's reason."""
    skipped = export_record.get("skipped", {})
    return {
        v: skipped.get(v, "not in export.json")
        for v in ORT_VARIANTS[device]
        if v not in export_record["variants"]
    }
