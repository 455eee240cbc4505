"""`python -m score ... --engine ray` in local mode on the tiny model: the same rows and
probabilities as the single-machine scorer, and the same messages for bad input. The tests that
start Ray skip without the ray extra; the others (argument checks, the worker's own code, the
message without Ray) run everywhere."""

from __future__ import annotations

import http.server
import importlib.util
import json
import logging
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import COMMENTS_HEADER, comment_rows, write_csv

from common.errors import UserError
from common.labelled import JIGSAW_LABELS
from score.__main__ import main

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="needs the ray extra: pip install -e '.[ray]'"
)

LONG = " ".join(["a comment long enough to be cut at the max length"] * 10)


def _inputs(folder: Path) -> tuple[Path, Path]:
    folder.mkdir()
    rows = comment_rows()
    first = write_csv(folder / "first.csv", COMMENTS_HEADER, [*rows, ["x1", None], ["x2", LONG]])
    second = write_csv(folder / "second.csv", COMMENTS_HEADER, [[f"s{r[0]}", r[1]] for r in rows])
    return first, second


def _local(tmp_path: Path, onnx_dir: Path, source: Path, *extra: str) -> pl.DataFrame:
    out = tmp_path / f"{source.stem}-local.parquet"
    argv = [str(source), str(out), "--model", str(onnx_dir), "--quiet", *extra]
    assert main(argv) == 0
    return pl.read_parquet(out)


@needs_ray
def test_ray_local_mode_matches_the_single_machine_scorer(
    tmp_path: Path, onnx_dir: Path, capsys: pytest.CaptureFixture
):
    first, second = _inputs(tmp_path / "in")
    out = tmp_path / "scored"
    flags = ["--chunk-rows", "7", "--max-len", "32", "--provider", "cpu", "--variant", "optimized"]
    argv = [str(first), str(second), str(out), "--model", str(onnx_dir), "--engine", "ray"]
    assert main([*argv, "--num-workers", "1", "--quiet", *flags]) == 0
    summary = capsys.readouterr().out
    assert (
        "on cpu (1 Ray worker) with the optimized model (fp32; asked for with --variant)" in summary
    )

    manifest = json.loads((out / "_manifest.json").read_text())
    for source in (first, second):
        expected = _local(tmp_path, onnx_dir, source, *flags)
        parts = sorted((out / source.stem).glob("part-*.parquet"))
        assert len(parts) == -(-expected.height // 7)  # one part per chunk, named in input order
        got = pl.concat([pl.read_parquet(p) for p in parts])
        assert got.columns == ["id", *JIGSAW_LABELS]
        assert got["id"].to_list() == expected["id"].to_list()
        probs = got.select(JIGSAW_LABELS).to_numpy()
        np.testing.assert_allclose(probs, expected.select(JIGSAW_LABELS).to_numpy(), atol=1e-6)
        entry = manifest["inputs"][str(source.resolve())]
        assert entry["rows"] == expected.height
    blank = sum(1 for _, text in comment_rows() if text is None or not text.strip())
    assert manifest["inputs"][str(first.resolve())]["empty_texts"] == blank + 1
    assert manifest["rows"] == len(comment_rows()) * 2 + 2
    assert (manifest["provider"], manifest["variant"]) == ("cpu", "optimized")

    assert main([*argv, "--quiet"]) == 2  # the same output again: only with --force
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"score: error: {out} already exists and is not empty; pass --force to replace it"
    ]
    assert json.loads((out / "_manifest.json").read_text()) == manifest


@needs_ray
def test_a_bad_row_found_by_a_worker_gets_the_local_message_and_no_output(
    tmp_path: Path, onnx_dir: Path, capsys: pytest.CaptureFixture
):
    first, _ = _inputs(tmp_path / "in")
    broken = tmp_path / "in" / "broken.csv"
    broken.write_text(first.read_text() + 'r99,"a quote that never closes\n')
    common = ["--model", str(onnx_dir), "--chunk-rows", "8"]
    assert main([str(broken), str(tmp_path / "local.parquet"), *common]) == 2
    local_error = capsys.readouterr().err.strip()
    out = tmp_path / "scored"
    assert main([str(tmp_path / "in"), str(out), *common, "--engine", "ray", "--quiet"]) == 2
    ray_error = capsys.readouterr().err.strip().splitlines()
    assert ray_error[-1] == local_error and "never closes" in local_error
    assert not out.exists() and not list(tmp_path.glob(".scored*"))


@needs_ray
@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--text-column", "text"], 'has no column "text" (found: id, comment_text)'),
        (["--provider", "cpu", "--variant", "fp16"], "--variant fp16 runs on CUDA only"),
    ],
)
def test_inputs_are_checked_before_ray_starts(
    tmp_path: Path, onnx_dir: Path, capsys: pytest.CaptureFixture, extra: list, fragment: str
):
    first, second = _inputs(tmp_path / "in")
    argv = [str(first), str(second), str(tmp_path / "o"), "--model", str(onnx_dir)]
    assert main([*argv, "--engine", "ray", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("score: error: ") and fragment in err[0]
    assert not (tmp_path / "o").exists()


@needs_ray
@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--address", "127.0.0.1:1"], "nothing answers at --address 127.0.0.1:1"),
        (["--address", "ray://127.0.0.1:1"], "nothing answers at --address ray://127.0.0.1:1"),
        (["--address", "no-port-here"], "is not auto, HOST:PORT or ray://HOST:PORT"),
        (["--num-workers", "64"], "--num-workers 64 needs 64.5 CPUs (64 workers and a reader)"),
    ],
)
def test_bad_ray_settings_are_one_line_and_quick(
    tmp_path: Path, onnx_dir: Path, capsys: pytest.CaptureFixture, extra: list, fragment: str
):
    """Once `--address 127.0.0.1:1` was still waiting after 120 s; --num-workers beyond the
    cluster waited for ever for actors that could not start."""
    first, second = _inputs(tmp_path / "in")
    argv = [str(first), str(second), str(tmp_path / "o"), "--model", str(onnx_dir), "--quiet"]
    started = time.monotonic()
    assert main([*argv, "--engine", "ray", *extra]) == 2
    assert time.monotonic() - started < 60  # a local Ray instance starts in about 5 s
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("score: error: ") and fragment in err[-1], err
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))


@pytest.mark.parametrize("gpus", ["0", "-1", "nan"])
def test_gpus_per_worker_must_be_above_zero(tmp_path: Path, capsys, gpus: str):
    first, second = _inputs(tmp_path / "in")
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                str(first),
                str(second),
                str(tmp_path / "o"),
                "--engine",
                "ray",
                "--gpus-per-worker",
                gpus,
            ]
        )
    assert exit_info.value.code == 2
    assert f"--gpus-per-worker: must be a number above 0, got {gpus}" in capsys.readouterr().err


def test_a_worker_that_cannot_honour_the_drivers_choice_fails_with_the_local_message(
    tmp_path: Path, onnx_dir: Path
):
    """The driver passes its provider to every actor; one without CUDA must not fall back."""
    from common.sessions import cuda_usable
    from score.ray_workers import ChunkScorer

    if cuda_usable():
        pytest.skip("this machine can run CUDA: the refusal needs a worker without it")
    actor = {"folder": str(tmp_path), "model_dir": str(onnx_dir), "id_name": "id"}
    scorer = {"variant": "optimized", "batch_size": None, "max_len": 32, "threads": 1}
    with pytest.raises(UserError, match="--provider cuda was asked for but onnxruntime cannot"):
        ChunkScorer(**actor, thresholds=False, provider="cuda", **scorer)


def test_without_ray_the_message_says_how_to_install_it(
    tmp_path: Path, onnx_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    first, second = _inputs(tmp_path / "in")
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra
    argv = [str(first), str(second), str(tmp_path / "o"), "--model", str(onnx_dir)]
    assert main([*argv, "--engine", "ray"]) == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err


def test_several_inputs_need_the_ray_engine(tmp_path: Path, capsys: pytest.CaptureFixture):
    first, second = _inputs(tmp_path / "in")
    with pytest.raises(SystemExit) as exit_info:
        main([str(first), str(second), str(tmp_path / "o.parquet")])
    assert exit_info.value.code == 2
    assert "pass --engine ray" in capsys.readouterr().err


@needs_ray
def test_an_address_where_something_else_listens_is_one_line_and_quick(
    tmp_path: Path, onnx_dir: Path, capsys: pytest.CaptureFixture
):
    """A web server on loopback: ray.init would wait minutes on it; the check says no at once."""
    server = socketserver.TCPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    first, second = _inputs(tmp_path / "in")
    argv = [str(first), str(second), str(tmp_path / "o"), "--model", str(onnx_dir), "--quiet"]
    started = time.monotonic()
    try:
        assert main([*argv, "--engine", "ray", "--address", address]) == 2
    finally:
        server.shutdown()
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err.strip().splitlines()  # the web server logs the request too
    assert err[-1:] == [
        f"score: error: something answers at --address {address}, but not Ray (no gRPC); pass "
        "the Ray head's address (HOST:6379, or ray://HOST:10001) or --address auto from a node "
        "of the cluster"
    ]
    assert not (tmp_path / "o").exists()


@needs_ray
def test_a_real_ray_head_passes_the_address_check():
    """Ray's own GCS, reached on loopback, answers the gRPC probe."""
    import ray

    from score.ray_engine import speaks_grpc

    ray.init(include_dashboard=False, num_cpus=1, logging_level=logging.ERROR)
    try:
        port = int(ray.get_runtime_context().gcs_address.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            assert speaks_grpc(connection)
    finally:
        ray.shutdown()
