"""A synthetic, clearly fake Jigsaw-format sample so the pipeline runs offline with no Kaggle file.
Its comments come from templates: a model trained on them proves the plumbing, not quality; real
figures come from real data (see docs/results.md)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from common.labelled import JIGSAW_LABELS

TOPICS = [
    "history", "geography", "football", "chemistry", "the election", "jazz", "railways",
    "astronomy", "cooking", "the river", "medieval castles", "software licences",
]  # fmt: skip
CLEAN = [
    "Thanks for fixing the {t} article, the sources look much better now.",
    "I moved the paragraph about {t} to the talk page until we find a citation.",
    "Could someone check the dates in the {t} section? They disagree with the infobox.",
    "Good point about {t}; I added two references from the library catalogue.",
    "Please discuss major changes to {t} here before reverting again.",
    "The image caption on {t} was wrong, I corrected it per the museum page.",
]
FILLER = [
    "I think we agree on most of this.",
    "See the archive for the earlier discussion.",
    "Happy editing.",
    "The lead section could also be shorter.",
    "Let me know if the formatting breaks on mobile.",
    "I will be offline until Monday.",
]
# Labelled pieces; the words are mild and the group names invented, on purpose.
TOXIC = {
    "insult": ["you are a clueless idiot", "what a pathetic moron you are", "you absolute clown"],
    "obscene": ["this is total crap", "damn this bloody mess", "what the hell is this garbage"],
    "threat": ["I will find you and make you regret it", "watch your back or you will get hurt"],
    "identity_hate": [
        "people from Zorblaxia are all worthless",
        "every Quendarian should be banned from here",
    ],
}


def make_comment(rng: random.Random) -> tuple[str, dict[str, int]]:
    labels = dict.fromkeys(JIGSAW_LABELS, 0)
    parts = [rng.choice(CLEAN).format(t=rng.choice(TOPICS))]
    if rng.random() < 0.4:
        for kind in rng.sample(list(TOXIC), k=rng.choice([1, 1, 2, 2, 3])):
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(TOXIC[kind]).capitalize() + "!")
            labels[kind] = 1
        labels["toxic"] = 1
        # Severe: a threat together with an insult or obscenity.
        labels["severe_toxic"] = labels["threat"] * max(labels["insult"], labels["obscene"])
    parts += rng.sample(FILLER, k=rng.choice([0, 0, 1, 2, 4]))
    return " ".join(parts), labels


def write_demo(folder: Path, rows: int = 1500, score_rows: int = 1000, seed: int = 0) -> Path:
    """Write `train.csv` (labelled) and `comments.csv` (id, comment_text) into `folder`."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "comment_text", *JIGSAW_LABELS])
        for i in range(rows):
            text, labels = make_comment(rng)
            writer.writerow([f"demo{i:06d}", text, *labels.values()])
    with open(folder / "comments.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "comment_text"])
        for i in range(score_rows):
            writer.writerow([f"new{i:06d}", make_comment(rng)[0]])
    return folder / "train.csv"
