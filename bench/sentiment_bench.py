#!/usr/bin/env python3
"""Sentiment throughput: the default model vs SnowNLP, one core, same run, same texts.

    python bench/sentiment_bench.py                 # 20,000 texts; SnowNLP on 1,000 of them
    python bench/sentiment_bench.py --n 50000 --n-snownlp 2000 --batch 512 --data DIR
    python bench/sentiment_bench.py --model ngram-moe   # the gated mixture instead

Texts come from <repo>/../shared/data/sentiment/weibo_senti_100k/test.tsv (20–200 chars)
when present, else from synthetic notice/complaint sentences. Same as
``matrixwatch sentiment bench``.
"""

from __future__ import annotations

import sys

from matrixwatch.streams.sentiment.cli import app

if __name__ == "__main__":
    sys.exit(app(["bench", *sys.argv[1:]]))
