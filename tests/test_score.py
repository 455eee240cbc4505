"""End-to-end tests of `python -m score` on the tiny model: order, values, bad input, interrupts.

The export folder is made once per session from `tiny_model_dir` (random weights, six labels).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch
from conftest import COMMENTS_HEADER, comment_rows, write_csv
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from common.labelled import JIGSAW_LABELS
from score.__main__ import main
from score.predict import Scorer, sigmoid
from score.run import run

REPO = Path(__file__).resolve().parents[1]
# Mixed lengths (one token to past the 512-token limit), commas, quotes, newlines, Unicode.
EXTRA_ROWS = [
    ["m0001", "ok"],
    ["m0002", "Commas, commas, and more commas, inside one field."],
    ["m0003", "Line one\nline two\r\nline three, with a \"quote\" and ''single'' ones"],
    ["m0004", "Emoji 🤬🙂👍🏽, Ελληνικά, עברית, русский, 中文, 日本語,한국어, Zürich"],
    ["m0005", " ".join(["This long comment repeats itself to pass the maximum length."] * 120)],
    ["m0006", "x" * 100_000],  # one 100,000-character "word": truncated, not fatal
    ["m0007", None],  # null text: scored as empty, counted
    ["m0008", "\t tabs and  spaces \t"],
]


@pytest.fixture(scope="session")
def onnx_dir_with_thresholds(tmp_path_factory: pytest.TempPathFactory, onnx_dir: Path) -> Path:
    """The export folder plus a thresholds.json as `python -m train` writes it."""
    out = tmp_path_factory.mktemp("score-thresholds") / "onnx"
    shutil.copytree(onnx_dir, out)
    cut = {n: {"threshold": 0.5, "f1": 0.5, "positives": 3} for n in JIGSAW_LABELS}
    (out / "thresholds.json").write_text(json.dumps(cut))
    return out


@pytest.fixture
def mixed_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "mixed.csv", COMMENTS_HEADER, comment_rows() + EXTRA_ROWS)


def _score(tmp_path: Path, onnx_dir: Path, input_path: Path, *extra: str) -> Path:
    out = tmp_path / "out.parquet"
    # Named, not auto: on a CPU with VNNI, auto may pick int8, which is not within 1e-5 of fp32.
    argv = [str(input_path), str(out), "--model", str(onnx_dir), "--quiet", "--force", *extra]
    if "--variant" not in extra:
        argv += ["--provider", "cpu", "--variant", "optimized"]
    assert main(argv) == 0
    return out


def _direct_probs(onnx_dir: Path, texts: list[str], file: str = "model.onnx") -> np.ndarray:
    """One text at a time, unpadded, with the transformers tokenizer and a plain session."""
    tokenizer = AutoTokenizer.from_pretrained(onnx_dir)
    session = ort.InferenceSession(str(onnx_dir / file), providers=["CPUExecutionProvider"])
    rows = []
    for text in texts:
        enc = tokenizer([text], truncation=True, max_length=512, return_tensors="np")
        (logits,) = session.run(["logits"], {k: v.astype(np.int64) for k, v in enc.items()})
        rows.append(sigmoid(logits)[0])
    return np.stack(rows)


def _texts(rows: list[list]) -> list[str]:
    return ["" if r[1] is None else r[1] for r in rows]


def test_order_and_values_over_chunks_match_direct_onnxruntime(
    tmp_path: Path, onnx_dir: Path, mixed_csv: Path
):
    rows = comment_rows() + EXTRA_ROWS
    out = _score(tmp_path, onnx_dir, mixed_csv, "--chunk-rows", "5", "--batch-size", "3")
    table = pq.read_table(out)
    assert table.column_names == ["id", *JIGSAW_LABELS]
    assert table.column("id").to_pylist() == [r[0] for r in rows]  # order and duplicates kept
    assert pq.ParquetFile(out).metadata.num_row_groups == -(-len(rows) // 5)
    probs = np.stack([table.column(n).to_numpy() for n in JIGSAW_LABELS], axis=1)
    assert probs.dtype == np.float32
    assert ((probs >= 0) & (probs <= 1)).all()
    np.testing.assert_allclose(probs, _direct_probs(onnx_dir, _texts(rows)), atol=1e-5)


def test_every_variant_is_within_parity_of_pytorch(onnx_dir: Path, tiny_model_dir: Path):
    texts = _texts(comment_rows() + EXTRA_ROWS)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with torch.inference_mode():
        enc = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
        expected = torch.sigmoid(model(**enc).logits).numpy()
    limits = json.loads((onnx_dir / "export.json").read_text())["variants"]
    for variant in ["fp32", "optimized", "int8"]:
        scorer = Scorer(onnx_dir, variant=variant, provider="cpu", batch_size=4)
        atol = limits[variant]["limit"] or 0.05  # int8 has no limit: a loose sanity bound
        np.testing.assert_allclose(scorer.predict(texts), expected, atol=atol, err_msg=variant)


def test_tokenizer_file_gives_the_transformers_ids(onnx_dir: Path):
    texts = _texts(comment_rows() + EXTRA_ROWS)
    scorer = Scorer(onnx_dir, provider="cpu")
    tokens = scorer.tokenize(texts)
    expected = AutoTokenizer.from_pretrained(onnx_dir)(texts, truncation=True, max_length=512)
    for i, ids in enumerate(expected["input_ids"]):
        start, length = tokens.starts[i], tokens.lengths[i]
        assert tokens.ids[start : start + length].tolist() == ids, texts[i][:40]
    assert tokens.lengths.max() == 512  # the long texts are cut at the training max length


def test_predict_keeps_input_order_across_length_sorted_batches(onnx_dir: Path):
    texts = _texts(comment_rows() + EXTRA_ROWS)[::-1]
    scorer = Scorer(onnx_dir, variant="optimized", provider="cpu", batch_size=2)
    one_by_one = np.concatenate([scorer.predict([t]) for t in texts])
    probs = scorer.predict(texts)
    assert probs.shape == (len(texts), len(JIGSAW_LABELS))
    assert scorer.labels == list(JIGSAW_LABELS) and scorer.provider == "cpu"
    assert scorer.variant == "optimized"
    np.testing.assert_allclose(probs, one_by_one, atol=1e-6)


@pytest.mark.gpu
def test_cuda_io_binding_matches_the_cpu(cuda_onnx_dir: Path):
    """fp16 (auto's pick on CUDA) and fp32 through IO binding: run on the CUDA provider, never a
    silent CPU fallback, and close to the CPU's probabilities."""
    texts = _texts(comment_rows() + EXTRA_ROWS)
    cpu = Scorer(cuda_onnx_dir, variant="fp32", provider="cpu").predict(texts)
    fp16 = Scorer(cuda_onnx_dir, provider="auto", batch_size=4)
    assert (fp16.provider, fp16.variant) == ("cuda", "fp16")
    fp32 = Scorer(cuda_onnx_dir, variant="fp32", provider="cuda", batch_size=4)
    for scorer, atol in ((fp16, 1e-2), (fp32, 1e-4)):  # export's parity limits
        assert scorer.session.get_providers()[0] == "CUDAExecutionProvider", scorer.variant
        np.testing.assert_allclose(scorer.predict(texts), cpu, atol=atol, err_msg=scorer.variant)


def test_summary_counts_empty_and_null_texts(tmp_path: Path, onnx_dir: Path, mixed_csv: Path):
    summary = run(
        input_path=mixed_csv,
        output_path=tmp_path / "o.parquet",
        model_dir=onnx_dir,
        provider="cpu",
        variant="optimized",
        quiet=True,
    )
    assert summary["rows"] == len(comment_rows()) + len(EXTRA_ROWS)
    assert summary["empty_texts"] == 3  # "", "   " and the null one
    assert summary["provider"] == "cpu" and summary["variant"] == "optimized"
    assert summary["rows_per_s"] > 0
    assert (summary["batch_size"], summary["batch_tokens"]) == (64, 64 * 32)  # the CPU budget


def test_no_id_column_writes_row_numbers(tmp_path: Path, onnx_dir: Path):
    path = write_csv(tmp_path / "texts.csv", ["comment_text"], [["a"], ["b c"], ["d"]])
    table = pq.read_table(_score(tmp_path, onnx_dir, path, "--no-id-column", "--chunk-rows", "2"))
    assert table.column_names[0] == "row"
    assert str(table.schema.field("row").type) == "int64"
    assert table.column("row").to_pylist() == [0, 1, 2]


def test_parquet_input_scores_like_csv(tmp_path: Path, onnx_dir: Path, mixed_csv: Path):
    frame = pl.read_csv(mixed_csv, infer_schema=False)
    source = tmp_path / "in.parquet"
    frame.with_row_index("n").write_parquet(source, row_group_size=7)
    from_csv = pl.read_parquet(_score(tmp_path, onnx_dir, mixed_csv))
    out = _score(tmp_path, onnx_dir, source, "--id-column", "n", "--chunk-rows", "4")
    from_parquet = pl.read_parquet(out)
    assert from_parquet["n"].to_list() == list(range(frame.height))  # id type kept (uint32)
    np.testing.assert_allclose(
        from_parquet.drop("n").to_numpy(), from_csv.drop("id").to_numpy(), atol=1e-6
    )


def test_thresholds_add_flag_columns(tmp_path: Path, onnx_dir_with_thresholds: Path, mixed_csv):
    out = _score(tmp_path, onnx_dir_with_thresholds, mixed_csv, "--thresholds")
    table = pl.read_parquet(out)
    assert table.columns == ["id", *JIGSAW_LABELS, *(f"{n}_flag" for n in JIGSAW_LABELS)]
    cut = json.loads((onnx_dir_with_thresholds / "thresholds.json").read_text())
    for name in JIGSAW_LABELS:
        assert table[f"{name}_flag"].dtype == pl.Boolean
        expected = table[name] >= cut[name]["threshold"]
        assert table[f"{name}_flag"].to_list() == expected.to_list()
    flags = table.select(pl.col("^.*_flag$")).to_numpy()
    assert flags.any() and not flags.all()  # the random model's scores fall on both sides


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, list[str], list[str]]]:
    """name -> (input, extra flags, fragments the message must hold)."""
    head = "id,comment_text\n" + "".join(f"r{i},comment number {i}\n" for i in range(40))
    files = {
        "missing.csv": None,
        "empty.csv": b"",
        "header_only.csv": head[:16].encode(),
        "unclosed_mid.csv": f'{head}r99,"no closing quote\n{head[16:]}'.encode(),
        "unclosed_end.csv": f'{head}r99,"no closing quote\n'.encode(),
        "stray_quote.csv": f'{head}r99,say "hi\n{head[16:]}'.encode(),
        "latin1.csv": f"{head}r99,café\n".encode("latin-1"),
        "ragged.csv": f"{head}r99,one,two\n".encode(),
    }
    for name, content in files.items():
        if content is not None:
            (tmp / name).write_bytes(content)
    return {
        "missing file": (tmp / "missing.csv", [], ["does not exist"]),
        "empty file": (tmp / "empty.csv", [], ["is empty"]),
        "header only": (tmp / "header_only.csv", [], ["no rows"]),
        "no text column": (
            tmp / "header_only.csv",
            ["--text-column", "text"],
            ["--text-column", "found: id, comment_text"],
        ),
        "no id column": (
            tmp / "header_only.csv",
            ["--id-column", "key"],
            ["--no-id-column", 'no column "key"'],
        ),
        "unclosed quote mid-file": (tmp / "unclosed_mid.csv", [], ["line 42", "quote"]),
        "unclosed quote at the end": (tmp / "unclosed_end.csv", [], ["line 42", "never closes"]),
        "quote inside a field": (tmp / "stray_quote.csv", [], ["line 42", "middle of a field"]),
        "not utf-8": (
            tmp / "latin1.csv",
            [],
            [f"offset {len(head) + 7}", "line 42", "--encoding utf8-lossy"],
        ),
        "too many fields": (tmp / "ragged.csv", [], ["line 42", "3 fields"]),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "empty file",
        "header only",
        "no text column",
        "no id column",
        "unclosed quote mid-file",
        "unclosed quote at the end",
        "quote inside a field",
        "not utf-8",
        "too many fields",
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(
    tmp_path: Path, onnx_dir: Path, capsys: pytest.CaptureFixture, case: str
):
    source, extra, fragments = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out" / "scores.parquet"
    out.parent.mkdir()
    argv = [str(source), str(out), "--model", str(onnx_dir), "--chunk-rows", "8", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("score: error: "), err
    assert str(source) in err[0] and "Traceback" not in err[0]
    for fragment in fragments:
        assert fragment in err[0]
    assert list(out.parent.iterdir()) == []  # no output, no temporary file


@pytest.mark.parametrize("block_bytes", [7, 64, 1000])
def test_csv_blocks_cut_only_between_records(
    monkeypatch: pytest.MonkeyPatch, mixed_csv: Path, block_bytes: int
):
    """Tiny read blocks end inside quoted multi-line fields: rows still come out whole."""
    import score.input_csv
    from score.input import iter_chunks, open_input

    monkeypatch.setattr(score.input_csv, "BLOCK_BYTES", block_bytes)
    source = open_input(mixed_csv, text_column="comment_text", id_column="id")
    chunks = list(iter_chunks(source, 4))
    expected = pl.read_csv(mixed_csv, infer_schema=False)
    assert [i for c in chunks for i in c.ids.to_pylist()] == expected["id"].to_list()
    texts = [t for c in chunks for t in c.texts]
    assert texts == expected["comment_text"].fill_null("").to_list()


def test_unclosed_quote_deep_in_a_big_file_is_caught(
    tmp_path: Path, onnx_dir: Path, capsys: pytest.CaptureFixture
):
    """A quote left open in the third 4 MB read block, with quoted fields after it: the run
    fails at that line instead of merging the rest of the file into one field."""
    rows = _write_comments(tmp_path / "big.csv", 30_000, notes=400).read_bytes().splitlines(True)
    rows.insert(20_001, b'r99,"no closing quote,\n')
    source = tmp_path / "unclosed.csv"
    source.write_bytes(b"".join(rows))
    out = tmp_path / "scores.parquet"
    argv = [str(source), str(out), "--model", str(onnx_dir), "--chunk-rows", "2000"]
    assert main([*argv, "--max-len", "16", "--batch-size", "500"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("score: error: ") and "line 20002" in err and "never closes" in err
    assert not out.exists() and not list(tmp_path.glob(".scores.parquet*"))


def test_lossy_encoding_reads_a_latin1_file(tmp_path: Path, onnx_dir: Path):
    source, _, _ = _bad_inputs(tmp_path)["not utf-8"]
    table = pl.read_parquet(_score(tmp_path, onnx_dir, source, "--encoding", "utf8-lossy"))
    assert table.height == 41 and table["id"][-1] == "r99"


def test_failed_run_keeps_an_existing_output(tmp_path: Path, onnx_dir: Path):
    source, _, _ = _bad_inputs(tmp_path)["unclosed quote mid-file"]
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"the previous results")
    argv = [str(source), str(out), "--model", str(onnx_dir), "--chunk-rows", "8"]
    assert main([*argv, "--force"]) == 2
    assert out.read_bytes() == b"the previous results"
    assert not list(tmp_path.glob(".scores.parquet*"))  # the temporary file is gone


def test_an_existing_output_needs_force(
    tmp_path: Path, onnx_dir: Path, mixed_csv: Path, capsys: pytest.CaptureFixture
):
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"the previous results")
    assert main([str(mixed_csv), str(out), "--model", str(onnx_dir), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"score: error: {out} already exists; pass --force to replace it"]
    assert out.read_bytes() == b"the previous results"
    assert main([str(mixed_csv), str(out), "--model", str(onnx_dir), "--quiet", "--force"]) == 0
    assert pq.ParquetFile(out).metadata.num_rows == len(comment_rows()) + len(EXTRA_ROWS)


def test_an_output_under_a_file_is_one_line(
    tmp_path: Path, onnx_dir: Path, mixed_csv: Path, capsys: pytest.CaptureFixture
):
    out = mixed_csv / "scores.parquet"  # the CSV is a file, not a folder
    assert main([str(mixed_csv), str(out), "--model", str(onnx_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("score: error: ") and str(out.parent) in err[0]


def test_unavailable_provider_or_variant_is_a_user_error(
    tmp_path: Path, onnx_dir: Path, mixed_csv: Path, capsys: pytest.CaptureFixture
):
    from common.sessions import cuda_usable

    base = [str(mixed_csv), str(tmp_path / "o.parquet"), "--model", str(onnx_dir)]
    cases = [["--variant", "fp16", "--provider", "cpu"]]
    if not cuda_usable():
        cases.append(["--provider", "cuda"])
    for flags in cases:
        assert main([*base, *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("score: error: "), err
    assert not (tmp_path / "o.parquet").exists()


def _write_comments(path: Path, rows: int, notes: int = 0) -> Path:
    """`rows` comments of 2 to 40 words (mixed lengths), plus an unscored `notes` column of
    `notes` characters that makes the file big without making it slow to score."""
    words = ["thanks", "for", "the", "edit,", "you", "idiot", "source", "café", "🙂"]
    texts = [
        " ".join(["comment", str(i), *(words[(i * k) % 9] for k in range(i % 39))])
        for i in range(rows)
    ]
    frame = pl.DataFrame({"id": [f"id{i}" for i in range(rows)], "comment_text": texts})
    frame.with_columns(notes=pl.lit("n" * notes)).write_csv(path)
    return path


DISK_FULL = (
    "import resource, sys\n"
    "from score.__main__ import main\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, 32 * 1024))\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_disk_full_is_one_line_no_partial_output_and_the_old_one_kept(
    tmp_path: Path, onnx_dir: Path
):
    """RLIMIT_FSIZE stands in for a full disk (EFBIG where a full disk gives ENOSPC): a 32 KiB
    cap on files this process writes, and an output of about 200 KiB."""
    source = _write_comments(tmp_path / "many.csv", 5000)
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"the previous results")
    argv = [str(source), str(out), "--model", str(onnx_dir), "--quiet", "--force"]
    argv += ["--max-len", "16", "--chunk-rows", "1000", "--batch-size", "500"]
    done = subprocess.run(
        [sys.executable, "-c", DISK_FULL, *argv], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr  # the one other line is the --max-len warning
    assert done.stderr.strip().splitlines()[-1] == (
        f"score: error: could not write {out} (File too large: this process may write files of "
        "32 KiB at most); the existing one is kept; free some space or pass a place you can write"
    )
    assert out.read_bytes() == b"the previous results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.csv", "scores.parquet"]


PEAK_RSS = (
    "import resource, sys\n"
    "from score.__main__ import main\n"
    "assert main(sys.argv[1:]) == 0\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
)


def _peak_rss_mib(source: Path, onnx_dir: Path, chunk_rows: int) -> int:
    """Score `source` in a fresh process; its peak resident memory in MiB."""
    out = source.with_suffix(".parquet")
    argv = [str(source), str(out), "--model", str(onnx_dir), "--quiet", "--max-len", "16"]
    argv += ["--chunk-rows", str(chunk_rows), "--batch-size", "500"]
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *argv], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert pq.ParquetFile(out).metadata.num_rows == len(pl.scan_csv(source).collect())
    return int(done.stdout.strip().splitlines()[-1])


def test_peak_memory_stays_flat_as_the_file_grows(tmp_path: Path, onnx_dir: Path):
    """20,000 and 150,000 rows (35 s on 2 idle cores: 20 and 150 chunks, 11 and 77 MB) both fill
    the pipeline (many chunks, several 4 MB read blocks), so any growth is memory that
    accumulates with rows; max length 16 keeps the tiny model fast."""
    small, big, chunk_rows, notes = 20_000, 150_000, 1000, 500
    small_csv = _write_comments(tmp_path / "small.csv", small, notes)
    small_rss = _peak_rss_mib(small_csv, onnx_dir, chunk_rows)
    big_csv = _write_comments(tmp_path / "big.csv", big, notes)
    big_rss = _peak_rss_mib(big_csv, onnx_dir, chunk_rows)
    assert big_rss < small_rss * 1.1 + 16, f"{small} rows: {small_rss} MiB, {big}: {big_rss} MiB"


def test_score_does_not_import_torch_or_other_stages():
    code = (
        "import sys, score.run, score.__main__\n"
        "stages = ('torch', 'transformers', 'train', 'export', 'ray')\n"
        "bad = [m for m in stages if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_help_runs_as_a_module():
    done = subprocess.run(
        [sys.executable, "-m", "score", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert done.returncode == 0
    assert "python -m score" in done.stdout and "--thresholds" in done.stdout
    assert "_flag" in done.stdout and "utf8-lossy" in done.stdout
