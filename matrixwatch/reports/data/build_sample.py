"""Regenerate the simulator rows of content_sample.jsonl (hand rows are kept as they are).

    python matrixwatch/reports/data/build_sample.py [--per-template 3] [--seed 10]

Every post template of :mod:`matrixwatch.collectors.simulator` is filled ``--per-template``
times for accounts of the matching kind, turned into plain text the way the stream stores
it (``html_to_text``), and labelled by the hand-made mapping ``TEMPLATE_LABELS`` below
(the 通知 template depends on which notice was drawn: ``NOTICE_LABELS``). Deterministic:
the same seed writes the same rows.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from matrixwatch.collectors import simulator as sim
from matrixwatch.streams.normalize import html_to_text

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "content_sample.jsonl"

# (pool, category) → label, decided by hand from the label guideline in README.md.
TEMPLATE_LABELS: dict[tuple[str, str], str] = {
    ("gov", "发布会"): "政务", ("gov", "防汛"): "民生", ("gov", "交通管制"): "民生",
    ("gov", "疫苗接种"): "民生", ("gov", "招聘"): "民生", ("gov", "天气预警"): "民生",
    ("gov", "民生"): "民生", ("gov", "停水"): "民生", ("gov", "政务服务"): "民生",
    ("gov", "文明"): "其他",
    ("公安", "反诈"): "民生", ("公安", "警情通报"): "政务", ("公安", "便民"): "民生",
    ("交警", "交通管制"): "民生", ("交警", "路况"): "民生", ("交警", "违法曝光"): "政务",
    ("应急管理", "安全生产"): "政务", ("应急管理", "森林防火"): "民生",
    ("应急管理", "防汛"): "民生",
    ("卫健委", "健康科普"): "民生", ("卫健委", "义诊"): "民生", ("卫健委", "疫苗接种"): "民生",
    ("文旅", "文旅"): "民生", ("文旅", "非遗"): "其他",
    ("共青团", "青年"): "其他", ("共青团", "招聘"): "民生",
    ("气象", "天气预警"): "民生", ("气象", "天气"): "民生",
    ("消防", "消防"): "民生", ("市场监管", "食品安全"): "政务", ("生态环境", "环境"): "民生",
    ("教育", "教育"): "民生", ("人社", "招聘"): "民生", ("人社", "社保"): "民生",
    ("税务", "税务"): "民生", ("民政", "民政"): "民生", ("住建", "住建"): "政务",
    ("城管", "城管"): "政务",
    ("surge", "停水"): "民生", ("surge", "拆迁"): "政务", ("surge", "执法"): "政务",
    ("surge", "环境"): "政务",
}
NOTICE_LABELS = {
    "调整部分公交线路": "民生", "延长政务服务中心周末办理时间": "民生",
    "开展燃气安全专项检查": "政务", "实施机动车限行措施": "民生",
    "开展第五次全国经济普查入户登记": "政务", "发放新一轮消费券": "民生",
}


def simulator_rows(per_template: int, seed: int) -> list[dict[str, str]]:
    matrix = sim.build_matrix(seed=seed)
    s = sim.Simulator(matrix, seed=seed)
    rng = random.Random(seed)
    by_kind: dict[str, list[int]] = {}
    for i, m in enumerate(s._meta):
        by_kind.setdefault(m["kind"], []).append(i)
    pools: list[tuple[str, sim.Template, list[int]]] = []
    pools += [("gov", t, by_kind["gov"]) for t in sim._T_GOV]
    for kind, tpls in sim._T_DEPT.items():
        pools += [(kind, t, by_kind.get(kind) or by_kind["gov"]) for t in tpls]
    counties = [i for i, a in enumerate(matrix.accounts) if a["level"] == "county"]
    pools += [("surge", t, counties) for t in sim._T_SURGE.values()]
    rows: list[dict[str, str]] = []
    for pool, (cat, _neg, topic, tpl), accs in pools:
        for k in range(per_template):
            i = accs[rng.randrange(len(accs))]
            ts = s.t0 + rng.randrange(60 * 86400)
            html = s._fill(tpl, i, ts)
            if topic and rng.random() < 0.6:
                html = sim.topic_html(f"{s._meta[i]['p']}{topic}") + html
            text = html_to_text(html)
            if pool == "gov" and cat == "通知":
                label = next(v for n, v in NOTICE_LABELS.items() if n in text)
            else:
                label = TEMPLATE_LABELS[(pool, cat)]
            rows.append({"id": f"s-{pool}-{cat}-{k}", "text": text, "label": label,
                         "source": "simulator", "split": "dev"})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-template", type=int, default=3)
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--out", type=Path, default=SAMPLE)
    args = ap.parse_args()
    keep = []
    if args.out.exists():
        for line in args.out.read_text(encoding="utf-8").splitlines():
            if line.strip() and json.loads(line)["source"] != "simulator":
                keep.append(json.loads(line))
    rows = keep + simulator_rows(args.per_template, args.seed)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                        encoding="utf-8")
    print(f"{len(keep)} hand rows kept, {len(rows) - len(keep)} simulator rows → {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
