"""Training presets and the gate offset (needs scikit-learn/scipy, the `train` extra)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from matrixwatch.streams.sentiment.features import WordVocab, build_lexicon, featurize, word_hashes
from matrixwatch.streams.sentiment.train import (
    PRESETS,
    Sets,
    TrainConfig,
    _fit_all,
    _matrix,
    _Set,
    _word_matrix,
    default_model_path,
)


def test_presets_name_the_shipped_files() -> None:
    assert set(PRESETS) == {
        "ngram",
        "ngram-moe",
        "ngram-mix",
        "ngram-words",
        "ngram-lex",
        "ngram-osm",
    }
    for kind, cfg in PRESETS.items():
        assert cfg.name == kind
        assert default_model_path(kind).is_file()
    assert not PRESETS["ngram"].moe and PRESETS["ngram-moe"].moe and PRESETS["ngram-mix"].moe
    # The default and ngram-moe keep the settings their shipped files were built with.
    assert PRESETS["ngram"] == TrainConfig()
    assert PRESETS["ngram-moe"].gate_offset == 0.0 and PRESETS["ngram-moe"].bits == 20
    mix = PRESETS["ngram-mix"]
    assert (mix.bits, mix.w_pol_weibo, mix.w_pol_osm, mix.gate_offset) == (22, 0.5, 1.5, 2.0)
    assert not mix.word_view
    # ngram-words is ngram-mix plus the word expert (word_mix picked by CV).
    words = PRESETS["ngram-words"]
    assert words.word_view and words.word_mix == 0.25 and words.c_word == 8.0
    assert words == TrainConfig(**{**vars(mix), "name": "ngram-words", "word_view": True})
    # ngram-lex is ngram-words plus the lexicon view (bins and scale picked by CV).
    lex = PRESETS["ngram-lex"]
    assert lex == TrainConfig(**{**vars(words), "name": "ngram-lex", "lexicon": True})
    assert lex.lex_scale == 2.0 and [len(e) for e in lex.lex_edges] == [9, 1]
    assert not lex.osm_expert
    # ngram-osm is ngram-lex plus the osm expert and its gate (weights picked by CV).
    osm = PRESETS["ngram-osm"]
    assert osm == TrainConfig(**{**vars(lex), "name": "ngram-osm", "osm_expert": True,
                                 "w_neu_seeds": 0.5})
    assert osm.osmx_weights == (0.1, 0.1, 1.0, 0.02, 1.0) and osm.gate_osm_offset == 0.0


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


def test_word_expert_is_fitted_on_the_expert_rows_and_blended() -> None:
    sets = _toy_sets()
    cfg = TrainConfig(bits=12, moe=True, word_view=True, word_bits=12, word_mix=0.25)
    xs = {k: _matrix(getattr(sets, k).texts, cfg) for k in ("pol", "neu", "exp", "gate")}
    vocab = WordVocab(word_hashes(["开心", "快乐", "失望", "透顶", "垃圾", "不错"]))
    xs["word"] = _word_matrix(sets.exp.texts, cfg, vocab)
    heads = _fit_all(sets, xs, cfg)
    assert heads.word is not None and heads.word_mix == 0.25
    p_pol, _ = heads.predict(xs["exp"], xs["word"])
    assert ((p_pol > 0.5) == (np.array(sets.exp.y) == 1)).all()
    # The blend: word_mix of the word logit, the rest from the character expert.
    assert heads.exp is not None and heads.gate is not None
    g = heads.gate.predict_proba(xs["exp"])[:, 1]
    z_exp = 0.75 * heads.exp.logit(xs["exp"]) + 0.25 * heads.word.logit(xs["word"])
    z = g * z_exp + (1 - g) * heads.pol.logit(xs["exp"])
    assert np.allclose(p_pol, 1 / (1 + np.exp(-z)))
    # Without the word view no word head is fitted.
    plain = _fit_all(sets, xs, TrainConfig(bits=12, moe=True))
    assert plain.word is None


def test_lexicon_bins_are_extra_columns_scaled_like_the_ngrams() -> None:
    cfg = TrainConfig(bits=12, lexicon=True, lex_edges=((0.0,),))
    lex = build_lexicon([{"失望": -2.0, "开心": 1.0}], cfg.lex_edges)
    texts = ["真失望", "开心开心", "", "无词"]
    x = _matrix(texts, cfg, lex)
    assert x.shape == (4, (1 << 12) + 2)
    counts = featurize(texts, 12, cfg.orders)[3]
    expect = lex.bins(texts) * (2.0 / np.sqrt(np.maximum(counts, 1)))[:, None]
    assert np.allclose(x[:, 1 << 12 :].toarray(), expect)
    assert np.allclose(x[:, : 1 << 12].toarray(), _matrix(texts, cfg).toarray())


def test_cv_folds_partition_each_source() -> None:
    from matrixwatch.streams.sentiment.train import _drop_fold, cv_folds

    cfg = TrainConfig()
    texts = [f"t{i}" for i in range(23)]
    ds = (texts, ["positive"] * 23)
    folds = cv_folds(23, cfg)
    assert sorted(set(folds.tolist())) == [0, 1, 2, 3, 4]
    assert np.array_equal(folds, cv_folds(23, cfg))  # fixed
    seen: list[str] = []
    for k in range(cfg.folds):
        kept, _ = _drop_fold(ds, cfg, k)
        held, _ = _drop_fold(ds, cfg, k, keep=False)
        assert not set(kept) & set(held) and len(kept) + len(held) == 23
        seen += held
    assert sorted(seen) == sorted(texts)


def test_cv_settings_override_a_preset() -> None:
    import typer

    from matrixwatch.streams.sentiment.cli import _override

    cfg = _override(
        PRESETS["ngram-lex"], ["w_pol_osm=2.5", 'lex_heads=["pol","exp"]', "word_view=false"]
    )
    assert isinstance(cfg, TrainConfig)
    assert cfg.w_pol_osm == 2.5 and cfg.lex_heads == ("pol", "exp") and not cfg.word_view
    assert cfg.name == "ngram-lex" and cfg.lexicon
    with pytest.raises(typer.BadParameter):
        _override(PRESETS["ngram-lex"], ["no_such_field=1"])


def test_lexicon_columns_only_reach_the_chosen_heads() -> None:
    sets = _toy_sets()
    cfg = TrainConfig(
        bits=12, moe=True, lexicon=True, lex_edges=((0.0,),), lex_heads=("pol", "exp")
    )
    lex = build_lexicon([{"开心": 1.0, "失望": -1.0, "垃圾": -1.0, "不错": 1.0}], cfg.lex_edges)
    xs = {k: _matrix(getattr(sets, k).texts, cfg, lex) for k in ("pol", "neu", "exp", "gate")}
    heads = _fit_all(sets, xs, cfg)
    assert heads.exp is not None and heads.gate is not None
    assert heads.pol.coef.size == heads.exp.coef.size == (1 << 12) + 2
    assert heads.neu.coef.size == heads.gate.coef.size == 1 << 12
    p_pol, p_neu = heads.predict(xs["pol"])  # the narrower heads read their own columns
    assert ((p_pol > 0.5) == (np.array(sets.pol.y) == 1)).all()
    assert p_neu.shape == p_pol.shape


def test_only_ngram_osm_is_built_with_the_question_seeds() -> None:
    """The other presets keep the rows their shipped files were built from."""
    from matrixwatch.streams.sentiment import seeds

    assert {k for k, c in PRESETS.items() if c.w_neu_seeds > 0} == {"ngram-osm"}
    questions = seeds.service_questions()
    assert len(set(questions)) == len(questions) > 500
    assert all("？" in q for q in questions + list(seeds.COMPLAINT_QUESTIONS))
