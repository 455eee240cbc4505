"""`--engine ray`: every input gets the single-machine checks first; then Ray Data streams chunks
through CPU tasks that read and tokenize (ray_workers) and a pool of actors that run the model
and write Parquet parts into the run's progress folder (score/progress.py: the same command
resumes a stopped run), checked (score.output) and moved into the output folder at the end. The
provider and variant are chosen here, once, for every worker."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pyarrow as pa

from common.cpu import cpu_flags
from common.errors import UserError
from common.variants import precision
from score.input import expand_inputs, open_input
from score.input_csv import first_line
from score.model_folder import (
    choose_variant,
    read_model_folder,
    read_thresholds,
    resolve_max_len,
    variant_choice,
)
from score.output import check_output_folder, finished_parts, output_schema, write_folder
from score.progress import Progress, input_facts
from score.ray_workers import CPU_THREADS_PER_WORKER, ChunkScorer, read_inputs
from score.run import READING, Options, check_unchanged, run_identity

# Reading and tokenizing take about 1% of a CPU worker's time. Their tasks ask for half a CPU:
# a request unlike the actors' keeps Ray from fusing the two stages into one serial actor, and
# leaves room for a reader beside a worker on a 2-core machine.
READ_CPUS = 0.5
INSTALL = 'pip install -e ".[ray]"'
ADDRESS_TIMEOUT_S = 10  # a Ray head answers a TCP connect in milliseconds, even across a WAN


def run_ray(
    *,
    inputs: list[Path],
    output: Path,
    address: str | None = None,
    num_workers: int | None = None,
    gpus_per_worker: float | None = None,
    **options,
) -> dict:
    """Score every row of every input into OUTPUT/<input stem>/part-*.parquet (`options`:
    score.run.Options' fields); return a summary."""
    o = Options(**options)
    ray = _import_ray()
    files = [f.resolve() for f in expand_inputs(inputs)]
    id_type = _same_id_type([open_input(f, **o.pick(*READING)) for f in files])
    check_output_folder(output, o.force)
    _check_address(address)
    folder = read_model_folder(o.model_dir)  # then its checks, before Ray starts
    cut = read_thresholds(folder) if o.thresholds else None
    if o.provider != "auto":
        choose_variant(folder, o.variant, o.provider)  # --variant/--provider clashes
    id_name = o.id_column or "row"
    output_schema(id_name, id_type, folder.labels, o.thresholds)
    max_len = resolve_max_len(folder, o.max_len)
    reader = {"options": o.pick(*READING), "chunk_rows": o.chunk_rows, "max_len": max_len}
    reader["tokenizer_file"] = str((folder.path / "tokenizer.json").resolve())
    actor = {"model_dir": str(o.model_dir.resolve()), "id_name": id_name, "max_len": max_len}
    actor |= o.pick("thresholds", "batch_size", "threads")
    started = time.perf_counter()
    _start_ray(ray, address, o.quiet)
    ray_start_s = time.perf_counter() - started
    try:
        plan = _plan(ray, folder, o.provider, o.variant, num_workers, gpus_per_worker)
        actor |= {"provider": plan["provider"], "variant": plan["variant"]}
        facts = [input_facts(f) for f in files]
        identity = run_identity(o, facts, plan["variant"], folder.labels, max_len, cut)
        totals = _score_to_folder(ray, files, output, identity, reader, actor, plan, o)
    finally:
        ray.shutdown()
    seconds = time.perf_counter() - started
    return {
        "rows": totals["rows"],
        "resumed_rows": totals["resumed"],
        "seconds": round(seconds, 3),
        # The rows scored by this run: resumed ones took no time here.
        "rows_per_s": round((totals["rows"] - totals["resumed"]) / seconds, 1),
        "ray_start_s": round(ray_start_s, 3),
        **plan,  # provider, variant, precision, workers, gpus_per_worker
        "empty_texts": totals["empty_texts"],
        "output": str(output),
        "inputs": len(files),
    }


def _plan(ray, folder, provider: str, variant: str, num_workers, gpus_per_worker) -> dict:
    """GPUs each worker holds (0 on the CPU; 1 when the cluster has GPUs and CUDA may be used;
    never more than exist), workers (--num-workers, else one per GPU or per 4 CPUs), and one
    provider and variant for the whole run: a worker that cannot honour them fails the run. Ray
    waits for ever for actors the cluster has no room for, and for readers once the actors hold
    every CPU (measured: 2 workers on a 2-CPU cluster hang): refuse up front."""
    have = ray.cluster_resources()
    cluster_gpus, gpus = have.get("GPU", 0), gpus_per_worker
    if provider == "cpu" and gpus:
        raise UserError("--gpus-per-worker needs --provider auto or cuda, not cpu")
    if gpus is None:
        gpus = 1 if cluster_gpus and provider != "cpu" else 0
    if provider == "cuda" and not gpus:
        raise UserError(
            f"--provider cuda but the Ray cluster has {cluster_gpus:g} GPUs for the workers; "
            "start Ray on GPU nodes, pass --gpus-per-worker, or pass --provider cpu"
        )
    if gpus > cluster_gpus:
        raise UserError(
            f"--gpus-per-worker {gpus:g} but the Ray cluster has {cluster_gpus:g} GPUs; "
            "pass a smaller --gpus-per-worker or --provider cpu"
        )
    if num_workers:
        workers = num_workers
    elif gpus:
        workers = max(1, int(cluster_gpus // gpus))
    else:
        workers = max(1, int(have.get("CPU", 1) // CPU_THREADS_PER_WORKER))
    cpus, need = have.get("CPU", 0), workers + READ_CPUS  # each worker holds 1 CPU
    if need > cpus:
        raise UserError(
            f"--num-workers {workers} needs {need:g} CPUs ({workers} workers and a reader) and "
            f"the Ray cluster has {cpus:g}; pass a smaller --num-workers or add nodes"
        )
    if gpus and workers * gpus > cluster_gpus:
        raise UserError(
            f"--num-workers {workers} with --gpus-per-worker {gpus:g} needs {workers * gpus:g} "
            f"GPUs and the Ray cluster has {cluster_gpus:g}; pass fewer workers or GPUs each"
        )
    provider = "cuda" if gpus else "cpu"
    variant, reason = variant_choice(folder, variant, provider)  # once, for every worker
    return {
        "provider": provider,
        "variant": variant,
        "variant_reason": reason,
        "precision": precision(variant, cpu_flags()),  # as on this (the driver's) CPU
        "workers": workers,
        "gpus_per_worker": gpus,
    }


def _score_to_folder(ray, files, output, identity, reader, actor, plan, o: Options) -> dict:
    """Score what earlier runs of the same command (`identity`: see score/progress.py) left,
    then put the output folder in place. Returns the rows, empty texts and resumed rows of all
    inputs. As in the local engine, an error (not an interruption) discards the progress."""
    progress = Progress(output, identity, o.force)  # after the plan: it names the variant
    resumed, finished = finished_parts(progress.folder, o.chunk_rows)
    try:
        todo = [f for f in files if f.stem not in finished]  # inputs an earlier run finished
        parts = resumed + _score_parts(ray, todo, progress.folder, resumed, reader, actor, plan)
        for file, facts in zip(files, identity["input"], strict=True):
            check_unchanged(file, facts)
        about = {"labels": identity["labels"], "model": str(o.model_dir)}
        about |= {k: plan[k] for k in ("provider", "variant", "precision")}
        names = {f.stem: str(f) for f in files}
        summary = write_folder(output, progress.folder, parts, names, about)
    except UserError:
        progress.discard()
        raise
    progress.discard()
    totals = {k: sum(entry[k] for entry in summary.values()) for k in ("rows", "empty_texts")}
    return totals | {"resumed": sum(p["rows"] for p in resumed)}


def _score_parts(ray, files, folder: Path, resumed: list[dict], reader, actor, plan) -> list:
    """Run the Ray Data pipeline over `files`, leaving out the chunks already `resumed`; the
    actors write the parts into `folder` and report them. A worker's UserError comes back as
    itself, not a traceback."""
    if not files:
        return []
    done: dict[str, list[int]] = {}
    for part in resumed:
        done.setdefault(part["input"], []).append(part["first_row"])
    dataset = ray.data.from_items([{"path": str(f)} for f in files], override_num_blocks=len(files))
    dataset = dataset.map_batches(
        read_inputs,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs=reader | {"done": done},
        num_cpus=READ_CPUS,
    )
    dataset = dataset.map_batches(
        ChunkScorer,
        batch_size=1,  # one chunk: see score/ray_workers.py
        batch_format="pyarrow",
        fn_constructor_kwargs=actor | {"folder": str(folder)},
        compute=ray.data.ActorPoolStrategy(size=plan["workers"]),
        num_gpus=plan["gpus_per_worker"] or None,
        num_cpus=1,  # Ray's bookkeeping; onnxruntime runs --threads (default up to 4) threads
    )
    try:
        return dataset.take_all()
    except Exception as e:
        if (found := _user_error(e)) is None:
            raise
        raise found from None


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise UserError(f"--engine ray needs Ray Data, which is not installed: {INSTALL}") from None
    return ray


def _same_id_type(sources: list) -> pa.DataType:
    if len({str(s.id_type) for s in sources}) > 1:
        found = ", ".join(f"{s.path.name}: {s.id_type}" for s in sources)
        raise UserError(
            f"the inputs' id columns have different types ({found}); score them in separate runs "
            "or convert the ids to one type"
        )
    return sources[0].id_type


def _check_address(address: str | None) -> None:
    """Fail at once when nothing listens at --address: ray.init would retry for minutes."""
    if address in (None, "auto", "local"):
        return  # ray.init answers these itself, at once
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not host or not port.isdigit():
        raise UserError(
            f"--address {address} is not auto, HOST:PORT or ray://HOST:PORT; pass one of those"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=ADDRESS_TIMEOUT_S) as s:
            grpc = speaks_grpc(s)
    except OSError as e:
        why = e.strerror or str(e) or type(e).__name__
        raise UserError(
            f"nothing answers at --address {address} ({why}); start Ray there (ray start "
            "--head) or pass --address auto from a node of the cluster"
        ) from None
    if not grpc:  # ray.init would wait for minutes on it
        raise UserError(
            f"something answers at --address {address}, but not Ray (no gRPC); pass the Ray head's "
            "address (HOST:6379, or ray://HOST:10001) or --address auto from a node of the cluster"
        )


def speaks_grpc(sock: socket.socket) -> bool:
    """Whether the server answers the HTTP/2 preface with a SETTINGS frame, as every gRPC server
    (Ray's GCS, its client server) does; an HTTP/1 server, a database ... answers otherwise."""
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
    try:
        header = sock.recv(9)
    except OSError:  # reset, or silent for ADDRESS_TIMEOUT_S
        return False
    return len(header) >= 4 and header[3] == 4


def _start_ray(ray, address: str | None, quiet: bool) -> None:
    """Join the cluster at `address`, or start a local instance for this run alone."""
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.ERROR if quiet else logging.WARNING,
            log_to_driver=not quiet,
            configure_logging=True,
        )
    except ConnectionError as e:  # --address auto with no cluster on this node
        raise UserError(
            f"cannot join the Ray cluster at --address {address} ({first_line(e)}); start Ray with "
            "ray start --head, or leave out --address to start a local instance"
        ) from None
    for name in ("ray", "ray.data"):
        if quiet:
            logging.getLogger(name).setLevel(logging.ERROR)
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(_no_errors)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = not quiet
    context.print_on_execution_start = False
    context.execution_options.verbose_progress = False


def _no_errors(record: logging.LogRecord) -> bool:
    """Ray logs a failed task's traceback before raising; the error is reported once, by us."""
    return record.levelno < logging.ERROR


def _user_error(error: BaseException | None) -> UserError | None:
    """The UserError a worker raised, however deep Ray wrapped it (the innermost one is the
    worker's own, with just the message)."""
    found, seen = None, set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, UserError):
            found = error
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__
    if found is None or not found.args:
        return None
    return UserError(str(found.args[0]).splitlines()[0])  # Ray appends its retry notes
