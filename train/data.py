"""The labelled-CSV reader lives in `common.labelled` (one set of rules for every stage)."""

from common.labelled import JIGSAW_LABELS, LabelledData, read_labelled_csv

__all__ = ["JIGSAW_LABELS", "LabelledData", "read_labelled_csv"]
