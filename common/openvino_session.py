"""OpenVINO on the CPU: the `bf16` variant (model.onnx in bf16) and `int8-static` (NNCF's IR).
onnxruntime's CPU provider has no bf16 matrix multiply on x86, so where bf16 runs in hardware
OpenVINO runs model.onnx in bf16: 1.5x PyTorch's bf16 autocast on Zen 4 (docs/variants.md). The
session offers the part of onnxruntime's InferenceSession that callers use (`get_inputs`,
`get_providers`, `run`), so one code path serves both runtimes."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace

from common.cpu import NO_BF16, bf16_flag, isa_tag, usable_cores
from common.errors import UserError

PRECISIONS = {"bf16": "bf16", "fp32": "f32"}
RUNTIME_CACHE_SHAPES = 50
INSTALL = "pip install openvino (the README's install brings it)"


def precision_for(variant: str, flags: frozenset[str]) -> str:
    """bf16 for the bf16 variant; int8-static's float operators in bf16 where the CPU has bf16
    hardware, else fp32 (its int8 MatMuls are int8 either way)."""
    return "bf16" if variant == "bf16" or bf16_flag(flags) else "fp32"


def snippets_on(flags: frozenset[str]) -> bool:
    """False on AMX CPUs, where OpenVINO's generated attention kernels ("snippets") cost
    fidelity or speed. int8-static with them gave probabilities up to 0.83 off PyTorch's for
    every batch padded to exactly 32 tokens (none at the other widths up to 128); without them
    no width strayed past 0.05 and it ran 1.05x faster. bf16 ran 1.11x faster without them,
    with two batches in flight (docs/variants.md, "Intel Xeon with AMX"). On elsewhere: on Zen 4
    turning them off changed neither variant's speed beyond the noise (0.97x-1.02x)."""
    return isa_tag(flags) != "amx"


def streams_for(flags: frozenset[str], threads: int | None) -> int:
    """How many batches the scorer keeps in flight: 2 on CPUs with bf16 hardware (AMX, Zen 4)
    and 2 or more threads, each batch on its own stream; 1 elsewhere (not measured there). On 2
    cores, two in flight ran MiniLM's bf16 1.07x and int8-static 1.20x on AMX, 1.07x and 1.03x
    on Zen 4, with the same probabilities; bert-base's bf16 0.985x on AMX (docs/results.md)."""
    return 2 if bf16_flag(flags) and (threads or usable_cores()) >= 2 else 1


class OpenVinoSession:
    """One compiled model and one infer request per stream (not thread-safe: one caller at a
    time); with `streams` > 1, `run_batches` keeps that many batches in flight."""

    def __init__(
        self,
        path: Path,
        precision: str = "bf16",
        threads: int | None = None,
        snippets: bool = True,
        streams: int = 1,
    ) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise UserError(
                f"the bf16 and int8-static variants run on OpenVINO, which is missing; {INSTALL}"
            ) from None
        config = {
            "INFERENCE_PRECISION_HINT": PRECISIONS[precision],
            "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
            # The CPU plugin keeps prepared kernels per input shape, 5,000 by default; length
            # bucketing makes every width up to max_len a new shape; capped at 50, a 100,000-row
            # run peaked at 1.1 GiB instead of 2.7 GiB at the same speed (docs/results.md).
            "CPU_RUNTIME_CACHE_CAPACITY": RUNTIME_CACHE_SHAPES,
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if not snippets:
            config["SNIPPETS_MODE"] = "DISABLE"
        if streams > 1:
            config["NUM_STREAMS"] = streams
        core = ov.Core()
        try:
            self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except RuntimeError as e:  # a truncated file, an operator OpenVINO does not know ...
            raise UserError(
                f"OpenVINO cannot run {path}: {_reason(e)}; re-export the model folder with "
                "python -m export, or pass --variant optimized"
            ) from None
        ran = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        # OpenVINO downgrades a precision the CPU lacks without a word: a bf16 figure that
        # was really fp32 must never be reported, so look.
        if ran != PRECISIONS[precision]:
            raise UserError(
                f"OpenVINO runs {path.name} in {ran}, not {precision}: {NO_BF16} (OpenVINO "
                "falls back to fp32 there); pass --variant optimized"
            )
        # one request per stream; no Python callback runs on OpenVINO's threads (one that ran
        # while a session or the interpreter was being torn down aborted the process)
        self.requests = [self.compiled.create_infer_request() for _ in range(streams)]
        self.precision = precision
        self.names = [i.get_any_name() for i in self.compiled.inputs]

    def get_inputs(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=n) for n in self.names]

    def get_providers(self) -> list[str]:
        return [f"OpenVINO CPU ({self.precision})"]

    def run(self, outputs: list[str], feed: dict):
        result = self.requests[0].infer(feed)
        return [result[self.compiled.output(name)].copy() for name in outputs]

    def run_batches(self, items: Iterable[tuple[object, dict]], output: str) -> Iterator[tuple]:
        """(key, `output`) for each (key, feed) of `items`, in order; with several streams the
        next batches start before the oldest one's result is taken."""
        if len(self.requests) == 1:
            for key, feed in items:
                yield key, self.run([output], feed)[0]
            return
        port, idle, running = self.compiled.output(output), deque(self.requests), deque()
        try:
            for key, feed in items:
                if not idle:  # every stream busy: take the oldest batch's result first
                    yield self._finish(running, port)
                    idle.append(running.popleft()[1])
                request = idle.popleft()
                request.start_async(feed)
                running.append((key, request))
            while running:
                yield self._finish(running, port)
                running.popleft()
        finally:  # Ctrl-C, an error, a caller that stops early: no batch is left running
            for request in self.requests:
                request.wait()

    @staticmethod
    def _finish(running: deque, port) -> tuple:
        key, request = running[0]
        request.wait()
        return key, request.get_tensor(port).data.copy()


def _reason(error: RuntimeError) -> str:
    """The last line of OpenVINO's message: the ones before it name its source files."""
    lines = [
        line.strip()
        for line in str(error).splitlines()
        if line.strip() and not line.startswith(("Exception from", "Check '"))
    ]
    return lines[-1] if lines else type(error).__name__
