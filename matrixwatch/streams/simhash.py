"""64-bit SimHash over character shingles, for 转载 (content) linkage.

WeChat articles and web pages have no repost primitive: a subordinate republishes the
superior's text, usually with a header ("来源：XX发布"), a trimmed ending or light edits.
Character shingles need no word segmentation, and a SimHash fingerprint is 16 hex
characters that fit in a task's state. Shingles are hashed with blake2b, never with
Python's salted ``hash()``, so fingerprints agree across processes and restarts.
"""

from __future__ import annotations

import hashlib
import re

SHINGLE = 3
_NOISE = re.compile(r"[\s\u3000，。、；：！？,.;:!?“”\"'‘’（）()【】\[\]《》<>—\-…·]+")


def normalize_text(text: str) -> str:
    """Drop whitespace and punctuation: reposting tools reflow and re-punctuate."""
    return _NOISE.sub("", text)


def shingles(text: str, k: int = SHINGLE) -> list[str]:
    t = normalize_text(text)
    if len(t) <= k:
        return [t] if t else []
    return [t[i : i + k] for i in range(len(t) - k + 1)]


def simhash(text: str, k: int = SHINGLE) -> int:
    """The 64-bit fingerprint; 0 for empty text (which never matches anything)."""
    weights = [0] * 64
    grams = shingles(text, k)
    if not grams:
        return 0
    for g in set(grams):
        h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "big")
        for bit in range(64):
            weights[bit] += 1 if (h >> bit) & 1 else -1
    out = 0
    for bit, w in enumerate(weights):
        if w > 0:
            out |= 1 << bit
    return out


def distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def to_hex(fp: int) -> str:
    return f"{fp:016x}"


def from_hex(s: str) -> int:
    return int(s, 16)


def containment(original: str, candidate: str, k: int = SHINGLE) -> float:
    """Share of the original's shingles found in the candidate (order-free, exact).

    SimHash on 100-character notices confuses same-template notices from different
    cities (bench/simhash_threshold.py), so a SimHash hit is confirmed with this.
    """
    a = set(shingles(original, k))
    if not a:
        return 0.0
    return len(a & set(shingles(candidate, k))) / len(a)
