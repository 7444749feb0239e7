"""Training presets and the gate offset (needs scikit-learn/scipy, the `train` extra)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from matrixwatch.streams.sentiment.train import (
    PRESETS,
    Sets,
    TrainConfig,
    _fit_all,
    _matrix,
    _Set,
    default_model_path,
)


def test_presets_name_the_shipped_files() -> None:
    assert set(PRESETS) == {"ngram", "ngram-moe", "ngram-mix"}
    for kind, cfg in PRESETS.items():
        assert cfg.name == kind
        assert default_model_path(kind).is_file()
    assert not PRESETS["ngram"].moe and PRESETS["ngram-moe"].moe and PRESETS["ngram-mix"].moe
    # The default and ngram-moe keep the settings their shipped files were built with.
    assert PRESETS["ngram"] == TrainConfig()
    assert PRESETS["ngram-moe"].gate_offset == 0.0 and PRESETS["ngram-moe"].bits == 20
    mix = PRESETS["ngram-mix"]
    assert (mix.bits, mix.w_pol_weibo, mix.w_pol_osm, mix.gate_offset) == (22, 0.5, 1.5, 2.0)


def _toy_sets() -> Sets:
    pos = ["很好很开心", "太棒了点赞", "开心快乐", "真不错喜欢"]
    neg = ["气死了太差", "失望透顶", "垃圾太烂了", "难过想哭"]
    texts = pos + neg
    y = [1] * 4 + [0] * 4
    sets = [_Set() for _ in range(4)]
    for s in sets:
        s.add(texts, y, 1.0)
    return Sets(*sets, counts={})


def test_gate_offset_is_added_to_the_gate_bias() -> None:
    sets = _toy_sets()
    fitted = {}
    for offset in (0.0, 2.0):
        cfg = TrainConfig(bits=12, moe=True, gate_offset=offset)
        xs = {k: _matrix(getattr(sets, k).texts, cfg) for k in ("pol", "neu", "exp", "gate")}
        fitted[offset] = _fit_all(sets, xs, cfg)
    a, b = fitted[0.0], fitted[2.0]
    assert a.gate is not None and b.gate is not None
    assert b.gate.intercept == pytest.approx(a.gate.intercept + 2.0)
    assert np.allclose(a.gate.coef, b.gate.coef)
    assert np.allclose(a.pol.coef, b.pol.coef)  # the other heads are untouched
