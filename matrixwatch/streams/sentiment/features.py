"""Hashed character n-gram features, computed for a whole batch at once in numpy.

Why this shape: Chinese needs no segmenter for character n-grams, and doing the hashing
with vectorised numpy over one concatenated batch (instead of a Python loop per n-gram)
is what makes 20k+ texts/s on one core possible. Training and inference call the same
:func:`featurize`, so the hash, normalisation and truncation can never drift apart.

The hash is a fixed multiplicative hash of the code points (not Python's ``hash``, which
is salted per process), so a model file means the same thing in every process.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

HEAD_CHARS = 512
TAIL_CHARS = 128
_SEP = "\x00"
_BOS = "\x02"
_EOS = "\x03"

# Full-width ASCII → half-width, digits → 0: a count's value carries no polarity.
_TRANS: dict[int, str] = {0xFF01 + i: chr(0x21 + i) for i in range(0x5E)}
_TRANS[0x3000] = " "
_TRANS.update({ord(d): "0" for d in "123456789１２３４５６７８９"})
_TRANS.update({ord(c): " " for c in "\t\r\n\x0b\x0c"})
_TRANS[ord(_BOS)] = " "
_TRANS[ord(_EOS)] = " "
_TRANSLATE = str.maketrans(_TRANS)

# URLs and user names are noise for polarity; keep a marker so "@someone" still reads.
_URL_RE = re.compile(r"https?://[!-~]+")
_MENTION_RE = re.compile(r"@[\w\-·]{1,30}")
_SPACES_RE = re.compile(r"  +")

_U64 = np.uint64
_MIX = _U64(0x9E3779B97F4A7C15)
_P = (_U64(0xC2B2AE3D27D4EB4F), _U64(0x165667B19E3779F9), _U64(0x27D4EB2F165667C5))
_SALT = (_U64(0x85EBCA77C2B2AE63), _U64(0xFF51AFD7ED558CCD), _U64(0xC4CEB9FE1A85EC53))

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def clip(text: str) -> str:
    """Keep the head and the tail of a very long text: bounded time, and both ends carry tone."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + text[-TAIL_CHARS:]


def normalize_joined(texts: Sequence[str]) -> str:
    """Clip, join with NUL and normalise the whole batch in a handful of C-level passes."""
    joined = _SEP.join(clip(t) for t in texts)
    if joined.count(_SEP) != len(texts) - 1:  # a text contained NUL: clean one by one
        joined = _SEP.join(clip(t).replace(_SEP, " ") for t in texts)
    joined = joined.translate(_TRANSLATE).lower()
    joined = _URL_RE.sub(" ", joined)
    joined = _MENTION_RE.sub("@", joined)
    joined = _SPACES_RE.sub(" ", joined)
    return joined


def _no_features() -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    """The ``(rows, buckets, values, counts)`` of an empty batch."""
    empty = np.zeros(0, dtype=np.int64)
    return empty, empty, np.zeros(0, dtype=np.float64), empty


def featurize(
    texts: Sequence[str], bits: int, orders: Sequence[int] = (1, 2, 3)
) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    """Return ``(rows, buckets, values, n_grams)`` for a batch.

    ``rows[k]`` is the text index of the k-th n-gram occurrence, ``buckets[k]`` its hash
    bucket in ``[0, 2**bits)`` and ``values[k]`` its weight ``1/sqrt(n_grams[row])`` (an
    approximate L2 normalisation that keeps short and long texts on one scale).
    ``n_grams[i]`` is the number of n-grams of text i (0 for an empty text).
    """
    n = len(texts)
    if n == 0:
        return _no_features()
    return featurize_joined(normalize_joined(texts), n, bits, orders)


def featurize_joined(
    joined: str, n: int, bits: int, orders: Sequence[int] = (1, 2, 3)
) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    """:func:`featurize` of ``n`` texts already passed through :func:`normalize_joined`."""
    # Each text becomes BOS text EOS; texts are separated by NUL.
    framed = _BOS + joined.replace(_SEP, _EOS + _SEP + _BOS) + _EOS
    codes = np.frombuffer(framed.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    is_sep = codes == 0
    seg = np.cumsum(is_sep)
    shift = _U64(64 - bits)

    rows_parts: list[IntArray] = []
    bucket_parts: list[IntArray] = []
    for order in orders:
        m = codes.size - order + 1
        if m <= 0:
            continue
        h = codes[:m] * _P[0] + _SALT[order - 1]
        bad = is_sep[:m].copy()
        for j in range(1, order):
            h = h ^ (codes[j : j + m] * _P[j])
            bad |= is_sep[j : j + m]
        # An n-gram made only of the frame markers (an empty text) is not a feature.
        if order == 1:
            bad |= (codes[:m] == ord(_BOS)) | (codes[:m] == ord(_EOS))
        elif order == 2:
            bad |= (codes[:m] == ord(_BOS)) & (codes[1 : 1 + m] == ord(_EOS))
        good = ~bad
        bucket_parts.append(((h[good] * _MIX) >> shift).astype(np.int64))
        rows_parts.append(seg[:m][good].astype(np.int64))
    if not rows_parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float64), np.zeros(n, dtype=np.int64)
    rows = np.concatenate(rows_parts)
    buckets = np.concatenate(bucket_parts)
    counts = np.bincount(rows, minlength=n).astype(np.int64)
    scale = 1.0 / np.sqrt(np.maximum(counts, 1))
    return rows, buckets, scale[rows], counts


# --------------------------------------------------------------------------- word view
#
# A second, word-level view of the same text for the ``ngram-words`` model. The words come
# from greedy forward maximum matching (longest first, 2–4 chars) against a vocabulary that
# ships inside the model file as sorted 64-bit word hashes: jieba's dictionary words that
# occur in the training texts (jieba is needed at training time only). The matching runs
# for the whole batch at once in numpy: one membership test per (position, length), then a
# walk that advances every text's cursor together, so a 256-text batch takes a few hundred
# small vector steps instead of a Python loop per character.

WORD_MAX_LEN = 4
_WP = (
    _U64(0x9FB21C651E98DF25),
    _U64(0xD6E8FEB86659FD93),
    _U64(0xA0761D6478BD642F),
    _U64(0xE7037ED1A0B428DB),
)
_WSALT = (
    _U64(0x8EBC6AF09C88C6E3),
    _U64(0x589965CC75374CC3),
    _U64(0x1D8E4E27C47D124F),
    _U64(0x2545F4914F6CDD1D),
)
_WBI = (_U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB), _U64(0x5851F42D4C957F2D))
_SPACE = ord(" ")

UIntArray = npt.NDArray[np.uint64]
_SMALL_BATCH = 8


def _window_hash(codes: UIntArray, length: int) -> UIntArray:
    """64-bit hash of every ``length``-char window of ``codes`` (one per start position)."""
    m = codes.size - length + 1
    h = codes[:m] * _WP[0] + _WSALT[length - 1]
    for j in range(1, length):
        h = h ^ (codes[j : j + m] * _WP[j])
    return h


def _codes(framed: str) -> UIntArray:
    return np.frombuffer(framed.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def word_hashes(words: Sequence[str]) -> UIntArray:
    """Sorted unique hashes of normalised words of 2..WORD_MAX_LEN chars (a vocabulary)."""
    out: list[int] = []
    for w in words:
        w = normalize_joined([w]).strip()
        if 2 <= len(w) <= WORD_MAX_LEN and " " not in w:
            out.append(int(_window_hash(_codes(w), len(w))[0]))
    return np.unique(np.array(out, dtype=np.uint64))


def window_hashes(texts: Sequence[str]) -> UIntArray:
    """Unique hashes of every 2..WORD_MAX_LEN-char window of the texts (vocabulary pruning)."""
    if not texts:
        return np.zeros(0, dtype=np.uint64)
    codes = _codes(_BOS + normalize_joined(texts).replace(_SEP, _EOS + _SEP + _BOS) + _EOS)
    parts = [_window_hash(codes, n) for n in range(2, WORD_MAX_LEN + 1)]
    return np.unique(np.concatenate(parts))


class WordVocab:
    """A set of word hashes with a fast vectorised membership test.

    A direct-mapped table (4 slots per word, 0 = empty) answers most look-ups with one
    gather; the few words that collided at build time sit in a small sorted overflow
    array, searched only for queries that land on such a slot. This is 5x faster than
    ``searchsorted`` over the whole sorted vocabulary.
    """

    def __init__(self, hashes: UIntArray) -> None:
        self.hashes = np.unique(np.asarray(hashes, dtype=np.uint64))
        size = max(int(self.hashes.size) * 4, 16)
        self.bits = int(np.ceil(np.log2(size)))
        slots = self._slot(self.hashes)
        # The first hash per slot goes in the table (a zero hash cannot: 0 marks empty);
        # the others go to the overflow, and their slots are marked as collided.
        uniq, first, count = np.unique(slots, return_index=True, return_counts=True)
        first = first[self.hashes[first] != 0]
        self.table = np.zeros(1 << self.bits, dtype=np.uint64)
        self.table[slots[first]] = self.hashes[first]
        rest = np.ones(self.hashes.size, dtype=bool)
        rest[first] = False
        self.overflow = self.hashes[rest]
        self.collided = np.zeros(1 << self.bits, dtype=bool)
        self.collided[uniq[count > 1]] = True
        self.collided[slots[rest]] = True
        self._first = (slots[first], first)  # for :meth:`index`, built on first use
        self._index: IntArray | None = None

    def _slot(self, h: UIntArray) -> IntArray:
        return ((h * _MIX) >> _U64(64 - self.bits)).astype(np.int64)

    def __len__(self) -> int:
        return int(self.hashes.size)

    def contains(self, h: UIntArray) -> npt.NDArray[np.bool_]:
        s = self._slot(h)
        hit = (self.table[s] == h) & (h != 0)
        if self.overflow.size:
            miss = np.flatnonzero(self.collided[s] & ~hit)
            if miss.size:
                q = h[miss]
                idx = np.minimum(np.searchsorted(self.overflow, q), self.overflow.size - 1)
                hit[miss] = self.overflow[idx] == q
        return hit

    def index(self, h: UIntArray) -> IntArray:
        """Position of each hash in the sorted :attr:`hashes`, or -1 where it is absent."""
        if self._index is None:
            self._index = np.full(1 << self.bits, -1, dtype=np.int32)
            self._index[self._first[0]] = self._first[1]
        s = self._slot(h)
        out = np.where((self.table[s] == h) & (h != 0), self._index[s], -1).astype(np.int64)
        if self.overflow.size:
            miss = np.flatnonzero(self.collided[s] & (out < 0))
            if miss.size:
                q = h[miss]
                j = np.minimum(np.searchsorted(self.hashes, q), self.hashes.size - 1)
                found = self.hashes[j] == q
                out[miss[found]] = j[found]
        return out


def segment(texts: Sequence[str], vocab: WordVocab) -> tuple[IntArray, UIntArray, IntArray]:
    """Forward-maximum-matching words of every text: ``(rows, hashes, lengths)`` in order.

    Text frames (BOS, EOS) are tokens of their own; spaces are dropped.
    """
    return segment_joined(normalize_joined(texts), vocab)


def segment_joined(joined: str, vocab: WordVocab) -> tuple[IntArray, UIntArray, IntArray]:
    """:func:`segment` of texts already passed through :func:`normalize_joined`."""
    framed = _BOS + joined.replace(_SEP, _EOS + _SEP + _BOS) + _EOS
    codes = _codes(framed)
    size = codes.size
    special = (codes == 0) | (codes == ord(_BOS)) | (codes == ord(_EOS)) | (codes == _SPACE)
    wlen = np.ones(size + WORD_MAX_LEN, dtype=np.int64)
    hashes = {1: _window_hash(codes, 1)}
    if len(vocab):
        for n in range(2, WORD_MAX_LEN + 1):
            if size < n:
                break
            h = _window_hash(codes, n)
            hashes[n] = h
            bad = special[: h.size].copy()
            for j in range(1, n):
                bad |= special[j : j + h.size]
            hit = vocab.contains(h) & ~bad
            wlen[: h.size][hit] = n  # longer matches overwrite shorter ones
    # Walk every text's cursor forward together; a cursor stops on its text's EOS.
    # Words never cross a frame marker, so from a text's BOS the walk lands on its EOS.
    is_start = np.zeros(size, dtype=bool)
    cur = np.flatnonzero(codes == ord(_BOS))
    eos = ord(_EOS)
    if cur.size < _SMALL_BATCH:  # a few texts: a plain loop beats many tiny numpy calls
        steps = wlen.tolist()
        ends = np.flatnonzero(codes == eos).tolist()
        starts: list[int] = []
        for p, end in zip(cur.tolist(), ends, strict=True):
            while p <= end:
                starts.append(p)
                p += steps[p]
        is_start[starts] = True
    else:
        while cur.size:
            is_start[cur] = True
            cur = cur[codes[cur] != eos]
            cur = cur + wlen[cur]
    pos = np.flatnonzero(is_start & (codes != _SPACE))
    lens = wlen[pos]
    tok = hashes[1][pos].copy()
    for n in range(2, WORD_MAX_LEN + 1):
        sel = lens == n
        if sel.any():
            tok[sel] = hashes[n][pos[sel]]
    rows = np.cumsum(codes == 0)[pos].astype(np.int64)
    return rows, tok, lens


_BOS_TOKEN = _window_hash(np.array([ord(_BOS)], dtype=np.uint64), 1)[0]
_EOS_TOKEN = _window_hash(np.array([ord(_EOS)], dtype=np.uint64), 1)[0]


def featurize_words(
    texts: Sequence[str], bits: int, vocab: WordVocab
) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    """Hashed word unigrams and bigrams, in :func:`featurize`'s ``(rows, buckets, values,
    counts)`` shape. Text boundaries take part in bigrams only; values are ``1/sqrt(count)``.
    """
    n = len(texts)
    if n == 0:
        return _no_features()
    return featurize_words_joined(normalize_joined(texts), n, bits, vocab)


def featurize_words_joined(
    joined: str, n: int, bits: int, vocab: WordVocab
) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    """:func:`featurize_words` of ``n`` texts already passed through :func:`normalize_joined`."""
    rows, tok, _ = segment_joined(joined, vocab)
    frame = (tok == _BOS_TOKEN) | (tok == _EOS_TOKEN)
    same = rows[:-1] == rows[1:]
    both_frame = frame[:-1] & frame[1:]  # BOS EOS: an empty text
    bi_ok = same & ~both_frame
    bi = (tok[:-1][bi_ok] * _WBI[0]) ^ (tok[1:][bi_ok] * _WBI[1]) ^ _WBI[2]
    shift = _U64(64 - bits)
    uni_ok = ~frame
    buckets = np.concatenate(
        [((tok[uni_ok] * _MIX) >> shift).astype(np.int64), ((bi * _MIX) >> shift).astype(np.int64)]
    )
    out_rows = np.concatenate([rows[uni_ok], rows[:-1][bi_ok]])
    counts = np.bincount(out_rows, minlength=n).astype(np.int64)
    scale = 1.0 / np.sqrt(np.maximum(counts, 1))
    return out_rows, buckets, scale[out_rows], counts


# ------------------------------------------------------------------------ lexicon view
#
# Prior knowledge for words the training rows rarely or never show: sentiment lexicons
# (scored words) read as a handful of dense features. One forward-maximum-matching pass
# against the lexicons' multi-char words (1-char entries are looked up as they come), then
# each matched token's score (sign flipped after a one-char negator such as 不) falls in a
# bin per lexicon; the features are the bin counts per text. A linear head weighs the
# bins, so it learns how far to trust each lexicon's score range on the training rows.

NEGATORS = "不没无别未非莫"
_NEGATOR_TOKENS = _window_hash(np.array([ord(c) for c in NEGATORS], dtype=np.uint64), 1)


class Lexicon:
    """Sorted entry hashes with one score column per lexicon (NaN where a lexicon lacks
    the entry) and the bin edges per lexicon. :meth:`bins` gives ``(n, n_bins)`` counts."""

    def __init__(
        self,
        hashes: UIntArray,
        scores: npt.NDArray[np.floating],
        lengths: IntArray,
        edges: Sequence[Sequence[float]],
    ) -> None:
        order = np.argsort(np.asarray(hashes, dtype=np.uint64), kind="stable")
        self.hashes = np.asarray(hashes, dtype=np.uint64)[order]
        self.edges = [np.asarray(e, dtype=np.float64) for e in edges]
        # Stored as float16 in the model file, so training rounds them the same way.
        scores16 = np.asarray(scores, dtype=np.float16).reshape(len(order), len(self.edges))
        self.scores = scores16[order].astype(np.float32)
        self.lengths = np.asarray(lengths, dtype=np.int64)[order]
        # One table for the matching walk and the score look-up: the walk only asks for
        # windows of 2+ chars, whose hashes (salted by length) are never a 1-char entry's.
        self.entries = WordVocab(self.hashes)
        self.n_bins = sum(e.size + 1 for e in self.edges)
        # Each entry's bin per lexicon column as read and negated (-1: not in that lexicon).
        self._bin = np.full((2, len(self.hashes), len(self.edges)), -1, dtype=np.int64)
        offset = 0
        for j, e in enumerate(self.edges):
            col = self.scores[:, j].astype(np.float64)
            have = ~np.isnan(col)
            for k, sign in enumerate((1.0, -1.0)):
                self._bin[k, have, j] = np.digitize(col[have] * sign, e) + offset
            offset += e.size + 1

    def __len__(self) -> int:
        return int(self.hashes.size)

    def bins(self, texts: Sequence[str]) -> FloatArray:
        return self.bins_joined(normalize_joined(texts), len(texts))

    def bins_joined(self, joined: str, n: int) -> FloatArray:
        """Bin counts of ``n`` texts already passed through :func:`normalize_joined`."""
        out = np.zeros((n, self.n_bins), dtype=np.float64)
        if not len(self):
            return out
        rows, tok, lens = segment_joined(joined, self.entries)
        idx = self.entries.index(tok)
        sel = np.flatnonzero(idx >= 0)
        if not sel.size:
            return out
        r = rows[sel]
        # A word of 2+ chars right after a one-char negator of the same text is flipped.
        prev = np.maximum(sel - 1, 0)
        negated = (sel > 0) & (rows[prev] == r) & np.isin(tok[prev], _NEGATOR_TOKENS)
        flip = (negated & (lens[sel] > 1)).astype(np.int64)
        b = self._bin[flip, idx[sel]]  # (matches, lexicons)
        cell = (r[:, None] * self.n_bins + b)[b >= 0]
        out += np.bincount(cell, minlength=n * self.n_bins).reshape(n, self.n_bins)
        return out


def lexicon_entry(word: str) -> tuple[int, int] | None:
    """``(hash, length)`` of a normalised entry of 1..WORD_MAX_LEN chars, else None."""
    n = normalize_joined([word]).strip()
    if not 1 <= len(n) <= WORD_MAX_LEN or " " in n or _SEP in n:
        return None
    return int(_window_hash(_codes(n), len(n))[0]), len(n)


def build_lexicon(
    lexicons: Sequence[dict[str, float]], edges: Sequence[Sequence[float]]
) -> Lexicon:
    """One :class:`Lexicon` from word → score dicts (a later word wins a normalised clash)."""
    table: dict[int, list[float]] = {}
    length: dict[int, int] = {}
    for j, lex in enumerate(lexicons):
        for word, score in lex.items():
            entry = lexicon_entry(word)
            if entry is None:
                continue
            h, n = entry
            table.setdefault(h, [float("nan")] * len(lexicons))[j] = float(score)
            length[h] = n
    keys = sorted(table)
    hashes = np.array(keys, dtype=np.uint64)
    scores = np.array([table[k] for k in keys], dtype=np.float32).reshape(len(keys), len(lexicons))
    lens = np.array([length[k] for k in keys], dtype=np.int64)
    return Lexicon(hashes, scores, lens, edges)
