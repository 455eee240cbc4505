"""A TF-IDF + logistic-regression baseline on the same train/test CSVs as the fine-tuned model.

python -m benchmarks.baseline --data train.csv --eval-data test_labeled.csv

Word 1-2 grams and character 2-5 grams, one logistic regression per label, fitted on all of
--data and scored on --eval-data (evaluation only; its -1 "unscored" rows are left out and
counted). It is the bar the transformer has to clear.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from benchmarks.texts import file_facts
from common.cli import parser, run_stage
from common.labelled import JIGSAW_LABELS, read_labelled_csv
from common.metrics import macro, per_label_auc
from common.writes import write_text


def _fit_predict(x_train, y: np.ndarray, x_test) -> np.ndarray:
    if len(np.unique(y)) < 2:  # logistic regression needs both classes
        return np.full(x_test.shape[0], float(y[0]) if len(y) else 0.0)
    model = LogisticRegression(C=4.0, max_iter=2000).fit(x_train, y)
    return model.predict_proba(x_test)[:, 1]


def baseline(data: Path, eval_data: Path, labels: list[str], text_column: str, out=None) -> str:
    """The result as JSON text, also written to `out` when given."""
    start = time.perf_counter()
    train = read_labelled_csv(data, text_column, labels, False, None)
    test = read_labelled_csv(eval_data, text_column, labels, True, None, flag="--eval-data")
    # Word and character TF-IDF, fitted on the training texts.
    shared = {"sublinear_tf": True, "max_features": 200_000}
    vectorizers = [
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, **shared),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=3, **shared),
    ]
    x_train = hstack([v.fit_transform(train.texts) for v in vectorizers]).tocsr()
    x_test = hstack([v.transform(test.texts) for v in vectorizers]).tocsr()
    probs = np.column_stack([_fit_predict(x_train, y, x_test) for y in train.labels.T])
    aucs = per_label_auc(test.labels, probs, labels)
    one_class = [n for n, y in zip(labels, train.labels.T, strict=True) if len(np.unique(y)) < 2]
    aucs.update(dict.fromkeys(one_class))  # nothing was learned for these
    result = {
        "model": "TF-IDF word 1-2 + char_wb 2-5 grams, logistic regression C=4 per label",
        "data": file_facts(data),
        "eval_data": file_facts(eval_data),
        "train_rows": len(train.texts),
        "eval_rows": len(test.texts),
        "eval_rows_labelled_-1_left_out": test.dropped_unlabeled,
        "roc_auc_macro": macro(aucs),
        "roc_auc": aucs,
        "labels_with_one_class_in_data": one_class,
        "seconds": time.perf_counter() - start,
    }
    text = json.dumps(result, indent=2)
    if out:
        write_text(out, text + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m benchmarks.baseline", __doc__)
    p.add_argument("--data", type=Path, required=True, help="labelled training CSV")
    p.add_argument("--eval-data", type=Path, required=True, help="labelled CSV to score")
    p.add_argument("--text-column", default="comment_text", help="column holding the comment")
    labels = "label columns (the baseline has no model folder to read them from, so the default "
    labels += "is the six Jigsaw labels)"
    p.add_argument("--labels", nargs="+", default=list(JIGSAW_LABELS), help=labels)
    p.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    args = p.parse_args(argv)
    code, text = run_stage("benchmarks.baseline", lambda: baseline(**vars(args)))
    if not code:
        print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
