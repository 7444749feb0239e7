"""Measure the SimHash distance threshold for 转载 (content) linkage on examples.

Positives: a superior's post republished by a subordinate in the ways seen on WeChat and
government sites (source header, footer, trimmed end, light edits). Negatives: pairs of
different posts. Texts come from the simulator (government notices of many topics), so
negatives include same-template notices from different cities, the hard case.

    python bench/simhash_threshold.py
"""

from __future__ import annotations

import random
import sys

from matrixwatch.collectors.simulator import Simulator, build_matrix
from matrixwatch.streams.normalize import html_to_text
from matrixwatch.streams.simhash import containment, distance, simhash


def variants(text: str, rng: random.Random) -> list[str]:
    """How subordinates republish: each is a positive pair with the original."""
    cut = max(10, int(len(text) * 0.85))
    chars = list(text)
    for _ in range(max(1, len(chars) // 40)):  # ~2.5% character edits
        i = rng.randrange(len(chars))
        chars[i] = rng.choice("的了是在和")
    return [
        f"来源：某某市发布\n{text}",
        f"{text}\n（编辑：张三 审核：李四）",
        text[:cut],
        "".join(chars),
        f"【转载】{text[:cut]}\n来源：某某发布",
    ]


def main() -> int:
    rng = random.Random(11)
    sim = Simulator(build_matrix(), seed=5)
    posts = []
    for obj in sim.events(40000):
        if "retweeted_status" not in obj and "status" not in obj:
            t = html_to_text(obj["text"])
            if len(t) >= 40:
                posts.append(t)
    posts = list(dict.fromkeys(posts))[:400]
    pos = [distance(simhash(p), simhash(v)) for p in posts for v in variants(p, rng)]
    neg = []
    fps = [simhash(p) for p in posts]
    for i in range(len(posts)):
        for j in range(i + 1, min(i + 40, len(posts))):
            neg.append(distance(fps[i], fps[j]))
    print(f"{len(posts)} distinct posts, {len(pos)} positive pairs, {len(neg)} negative pairs")
    print("SimHash alone: max distance  recall   false-match-rate")
    for k in range(0, 25, 2):
        recall = sum(d <= k for d in pos) / len(pos)
        fmr = sum(d <= k for d in neg) / len(neg)
        print(f"{k:>28}  {recall:6.3f}   {fmr:8.5f}")
    cpos = [containment(p, v) for p in posts for v in variants(p, rng)]
    cneg = [containment(posts[i], posts[j]) for i in range(len(posts))
            for j in range(i + 1, min(i + 40, len(posts)))]
    print("shingle containment: min   recall   false-match-rate")
    for c in (0.5, 0.6, 0.7, 0.8, 0.9):
        recall = sum(x >= c for x in cpos) / len(cpos)
        fmr = sum(x >= c for x in cneg) / len(cneg)
        print(f"{c:>27.1f}  {recall:6.3f}   {fmr:8.5f}")
    print(f"max containment among negatives: {max(cneg):.3f}; "
          f"min among positives: {min(cpos):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
