"""`nuri eval report`: one self-contained HTML file (inline SVG and a little inline JS, nothing
fetched to view it) plus a Markdown summary beside it.

Charts: score by suite per model with 95% intervals, score against cost, latency distributions.
Below them, every item with its prompt, reply and score, filterable.
"""

from __future__ import annotations

import html
import json
import statistics
from pathlib import Path
from typing import Any

from nuri.evals.leaderboard import leaderboard, model_pairs

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"]
Row = dict[str, Any]


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _colors(models: list[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def _legend(colors: dict[str, str], x: int, y: int) -> str:
    parts = []
    for i, (m, c) in enumerate(colors.items()):
        parts.append(f'<rect x="{x}" y="{y + i * 18}" width="12" height="12" fill="{c}"/>'
                     f'<text x="{x + 18}" y="{y + i * 18 + 10}" font-size="12">{_e(m)}</text>')
    return "".join(parts)


def score_chart(board: list[dict[str, Any]], colors: dict[str, str]) -> str:
    suites = sorted({e["suite"] for e in board})
    models = list(colors)
    w, h, left, bottom, top = max(520, 90 + len(suites) * (len(models) * 22 + 30)), 320, 50, 60, 20
    plot_h = h - bottom - top
    group_w = (w - left - 160) / max(1, len(suites))
    bar_w = max(6.0, min(22.0, (group_w - 16) / max(1, len(models))))
    out = [f'<svg class="chart" id="chart-scores" role="img" aria-label="score by suite" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">']
    for t in range(0, 11, 2):
        y = top + plot_h * (1 - t / 10)
        out.append(f'<line x1="{left}" x2="{w - 160}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{t / 10:.1f}</text>')
    by = {(e["suite"], e["model"]): e for e in board}
    for si, suite in enumerate(suites):
        gx = left + si * group_w + 8
        for mi, model in enumerate(models):
            e = by.get((suite, model))
            if not e:
                continue
            x = gx + mi * bar_w
            y = top + plot_h * (1 - e["score"])
            out.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" '
                       f'height="{top + plot_h - y:.1f}" fill="{colors[model]}">'
                       f'<title>{_e(model)} · {_e(suite)}: {e["score"]:.3f} [{e["ci_low"]:.3f}, {e["ci_high"]:.3f}]'
                       f'</title></rect>')
            cx = x + (bar_w - 2) / 2
            out.append(f'<text x="{cx:.1f}" y="{y - 3:.1f}" font-size="9" text-anchor="middle" '
                       f'fill="#374151">{e["score"]:.2f}</text>')
            y1, y2 = top + plot_h * (1 - e["ci_low"]), top + plot_h * (1 - e["ci_high"])
            out.append(f'<line class="ci" x1="{cx:.1f}" x2="{cx:.1f}" y1="{y1:.1f}" y2="{y2:.1f}" stroke="#111" '
                       f'stroke-width="1.2"/>')
        label_x = gx + len(models) * bar_w / 2
        out.append(f'<text x="{label_x:.1f}" y="{h - bottom + 16}" font-size="11" text-anchor="middle">'
                   f'{_e(suite)}</text>')
    out.append(f'<line x1="{left}" x2="{w - 160}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#111"/>')
    out.append(_legend(colors, w - 150, top))
    out.append("</svg>")
    return "".join(out)


def cost_chart(board: list[dict[str, Any]], colors: dict[str, str]) -> str:
    w, h, left, bottom, top, right = 560, 300, 70, 40, 20, 170
    points = [(e["cost_total"] / e["n"] if e["cost_total"] is not None and e["n"] else 0.0, e) for e in board]
    top_cost = max((c for c, _ in points), default=0.0)
    max_cost = top_cost or 1.0
    out = [f'<svg class="chart" id="chart-cost" role="img" aria-label="score vs cost" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">']
    pw, ph = w - left - right, h - top - bottom
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#9ca3af"/>')
    for t in range(0, 11, 5):
        y = top + ph * (1 - t / 10)
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{t / 10:.1f}</text>')
    out.append(f'<text x="{left}" y="{h - 8}" font-size="11">0</text>'
               f'<text x="{left + pw}" y="{h - 8}" font-size="11" text-anchor="end">'
               f'{f"{top_cost:.2g} per item" if top_cost else "no priced items"}</text>'
               f'<text x="{left + pw / 2}" y="{h - 8}" font-size="11" text-anchor="middle">cost</text>')
    for cost, e in points:
        x = left + pw * (cost / max_cost)
        y = top + ph * (1 - e["score"])
        out.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colors[e["model"]]}" '
                   f'fill-opacity="0.8"><title>{_e(e["model"])} · {_e(e["suite"])}: score {e["score"]:.3f}, '
                   f'cost/item {cost:.3g}</title></circle>')
    out.append(_legend(colors, w - right + 12, top))
    out.append("</svg>")
    return "".join(out)


def latency_chart(rows: list[Row], colors: dict[str, str]) -> str:
    models = list(colors)
    lat = {m: sorted(r["latency_ms"] for r in rows if r["model"] == m and r["latency_ms"] is not None)
           for m in models}
    top_ms = max((v[-1] for v in lat.values() if v), default=1.0) or 1.0
    w, row_h, left, top = 640, 34, 150, 20
    h = top + row_h * len(models) + 40
    pw = w - left - 30
    out = [f'<svg class="chart" id="chart-latency" role="img" aria-label="latency distribution" width="{w}" '
           f'height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">']

    def sx(v: float) -> float:
        return left + pw * v / top_ms

    for i, m in enumerate(models):
        v = lat[m]
        cy = top + i * row_h + row_h / 2
        out.append(f'<text x="{left - 8}" y="{cy + 4:.1f}" font-size="12" text-anchor="end">{_e(m)}</text>')
        if len(v) < 2:
            continue
        q = statistics.quantiles(v, n=20, method="inclusive")
        p5, p25, p50, p75, p95 = q[0], q[4], q[9], q[14], q[18]
        c = colors[m]
        out.append(f'<line x1="{sx(p5):.1f}" x2="{sx(p95):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" stroke="{c}"/>'
                   f'<rect class="box" x="{sx(p25):.1f}" y="{cy - 9:.1f}" width="{max(1.0, sx(p75) - sx(p25)):.1f}" '
                   f'height="18" fill="{c}" fill-opacity="0.35" stroke="{c}"><title>{_e(m)}: p50 {p50:.0f} ms, '
                   f'p95 {p95:.0f} ms</title></rect>'
                   f'<line x1="{sx(p50):.1f}" x2="{sx(p50):.1f}" y1="{cy - 9:.1f}" y2="{cy + 9:.1f}" stroke="#111" '
                   f'stroke-width="2"/>')
    axis_y = top + row_h * len(models) + 8
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{axis_y}" y2="{axis_y}" stroke="#111"/>'
               f'<text x="{left}" y="{axis_y + 16}" font-size="11">0 ms</text>'
               f'<text x="{left + pw}" y="{axis_y + 16}" font-size="11" text-anchor="end">{top_ms:.0f} ms</text>')
    out.append("</svg>")
    return "".join(out)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 0.01 and v != 0 else f"{v:.{digits}f}"
    return str(v)


def _board_table(board: list[dict[str, Any]]) -> str:
    head = ("<tr><th>suite</th><th>model</th><th>n</th><th>score</th><th>95% CI</th><th>correct</th>"
            "<th>errors</th><th>cost / correct</th><th>latency p50 ms</th><th>TTFT p50 ms</th>"
            "<th>terminology rate</th><th>language misses</th></tr>")
    body = "".join(
        f"<tr><td>{_e(e['suite'])}</td><td>{_e(e['model'])}</td><td>{e['n']}</td><td>{e['score']:.3f}</td>"
        f"<td>[{e['ci_low']:.3f}, {e['ci_high']:.3f}]</td><td>{e['correct']}</td><td>{e['errors']}</td>"
        f"<td>{_fmt(e['cost_per_correct'])}</td><td>{_fmt(e['latency_p50_ms'], 1)}</td>"
        f"<td>{_fmt(e['ttft_p50_ms'], 1)}</td><td>{_fmt(e.get('term_rate'))}</td>"
        f"<td>{_fmt(e.get('language_miss_rate'))}</td></tr>" for e in board)
    return f'<table class="board">{head}{body}</table>'


def _items_html(rows: list[Row]) -> str:
    out = []
    for r in rows:
        try:
            messages = json.loads(r["prompt"])
            prompt = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
        except (ValueError, TypeError, KeyError):
            prompt = r["prompt"]
        ok = "pass" if r["passed"] else ("error" if r["error"] else "fail")
        score = "–" if r["score"] is None else f"{r['score']:.3f}"
        details = json.dumps(r["details"] or {}, ensure_ascii=False)
        out.append(
            f'<details class="item {ok}" data-search="{_e((r["suite"] + " " + r["model"] + " " + r["item_id"]).lower())}">'
            f'<summary><span class="badge {ok}">{ok}</span> {_e(r["suite"])} · {_e(r["item_id"])} · {_e(r["model"])}'
            f' · score {score} · {_fmt(r["latency_ms"], 0)} ms</summary>'
            f'<div class="cols"><div><h4>prompt</h4><pre>{_e(prompt)}</pre></div>'
            f'<div><h4>reply</h4><pre>{_e(r["reply"])}</pre>'
            + (f'<h4>error</h4><pre>{_e(r["error"])}</pre>' if r["error"] else "")
            + f'<h4>details</h4><pre>{_e(details)}</pre></div></div></details>')
    return "".join(out)


STYLE = """body{font-family:system-ui,'Noto Sans KR','Noto Sans CJK KR',sans-serif;margin:24px;color:#111}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #d1d5db;padding:3px 8px;text-align:left}
th{background:#f3f4f6}.charts{display:flex;flex-wrap:wrap;gap:24px}.chart{border:1px solid #e5e7eb;background:#fff}
details.item{border-bottom:1px solid #eee;padding:3px 0;font-size:13px}pre{white-space:pre-wrap;background:#f9fafb;
padding:6px;max-height:320px;overflow:auto}.cols{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.badge{display:inline-block;width:42px;text-align:center;border-radius:4px;color:#fff;font-size:11px}
.badge.pass{background:#16a34a}.badge.fail{background:#dc2626}.badge.error{background:#6b7280}"""

SCRIPT = """function filterItems(){var q=document.getElementById('q').value.toLowerCase();
var f=document.getElementById('failonly').checked;var n=0;
document.querySelectorAll('details.item').forEach(function(d){var show=d.dataset.search.indexOf(q)>=0&&
(!f||!d.classList.contains('pass'));d.style.display=show?'':'none';if(show)n++;});
document.getElementById('shown').textContent=n;}
window.addEventListener('load',function(){document.querySelectorAll('svg.chart').forEach(function(svg){
var drawn=0;svg.querySelectorAll('rect.bar,circle.point,rect.box').forEach(function(el){
var r=el.getBoundingClientRect();if(r.width>0&&r.height>0)drawn++;});svg.setAttribute('data-drawn',drawn);});});"""


def label_runs(rows: list[Row]) -> list[Row]:
    """When several runs scored the same suite and model, tell them apart as model@run."""
    runs_per: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        runs_per.setdefault((r["suite"], r["model"]), set()).add(r["run_id"])
    if all(len(v) == 1 for v in runs_per.values()):
        return rows
    return [r | {"model": f"{r['model']}@{r['run_id'][:6]}"} for r in rows]


def render_html(runs: list[dict[str, Any]], rows: list[Row]) -> str:
    rows = label_runs(rows)
    board = leaderboard(rows)
    models = sorted({r["model"] for r in rows})
    colors = _colors(models)
    pairs = model_pairs(rows)
    run_list = "".join(
        f"<li><code>{_e(r['id'])}</code> {_e(r['status'])} · started {_e(r['started_at'])} · models "
        f"{_e(', '.join(r['models']))} · suites "
        f"{_e(', '.join(s['name'] + '@' + s['version'] for s in r['suites']))}</li>" for r in runs)
    pair_rows = "".join(
        f"<tr><td>{_e(p['suite'])}</td><td>{_e(p['model_b'])} vs {_e(p['model_a'])}</td><td>{p['n']}</td>"
        f"<td>{p['diff']:+.3f} [{p['diff_low']:+.3f}, {p['diff_high']:+.3f}]</td><td>{p['p_bootstrap']:.3f}</td>"
        f"<td>{p['p_mcnemar']:.3f}</td></tr>" for p in pairs)
    pairs_html = (f"<h2>Paired significance (top two per suite)</h2><table><tr><th>suite</th><th>models</th><th>n</th>"
                  f"<th>difference [95% CI]</th><th>p (bootstrap)</th><th>p (McNemar)</th></tr>{pair_rows}</table>"
                  if pairs else "")
    return f"""<!doctype html><html lang="ko"><head><meta charset="utf-8"><title>Nuri evaluation report</title>
<style>{STYLE}</style><script>{SCRIPT}</script></head><body>
<h1>Nuri evaluation report</h1><ul>{run_list}</ul>
<div class="charts"><figure><figcaption>Score by suite (bars: mean, lines: bootstrap 95% interval)</figcaption>
{score_chart(board, colors)}</figure><figure><figcaption>Score vs cost per item</figcaption>{cost_chart(board, colors)}
</figure><figure><figcaption>Latency per item (box: p25–p75, line: median, whiskers: p5–p95)</figcaption>
{latency_chart(rows, colors)}</figure></div>
<h2>Leaderboard</h2>{_board_table(board)}{pairs_html}
<h2>Items (<span id="shown">{len(rows)}</span>)</h2>
<p><input id="q" placeholder="filter by suite, model or item" oninput="filterItems()">
<label><input type="checkbox" id="failonly" onchange="filterItems()"> failures only</label></p>
{_items_html(rows)}</body></html>"""


def render_markdown(runs: list[dict[str, Any]], rows: list[Row]) -> str:
    rows = label_runs(rows)
    board = leaderboard(rows)
    lines = ["# Nuri evaluation report", ""]
    lines += [f"- run `{r['id']}` ({r['status']}): models {', '.join(r['models'])}; suites "
              + ", ".join(f"{s['name']}@{s['version']}" for s in r["suites"]) for r in runs]
    lines += ["", "| suite | model | n | score | 95% CI | errors | cost / correct | latency p50 ms | TTFT p50 ms "
              "| terminology rate | language misses |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in board:
        lines.append(f"| {e['suite']} | {e['model']} | {e['n']} | {e['score']:.3f} | "
                     f"[{e['ci_low']:.3f}, {e['ci_high']:.3f}] | {e['errors']} | {_fmt(e['cost_per_correct'])} | "
                     f"{_fmt(e['latency_p50_ms'], 1)} | {_fmt(e['ttft_p50_ms'], 1)} | "
                     f"{_fmt(e.get('term_rate'))} | {_fmt(e.get('language_miss_rate'))} |")
    pairs = model_pairs(rows)
    if pairs:
        lines += ["", "| suite | models | n | difference [95% CI] | p (bootstrap) | p (McNemar) |", "|---|---|---|---|---|---|"]
        lines += [f"| {p['suite']} | {p['model_b']} vs {p['model_a']} | {p['n']} | {p['diff']:+.3f} "
                  f"[{p['diff_low']:+.3f}, {p['diff_high']:+.3f}] | {p['p_bootstrap']:.3f} | {p['p_mcnemar']:.3f} |"
                  for p in pairs]
    return "\n".join(lines) + "\n"


def write_report(runs: list[dict[str, Any]], rows: list[Row], path: Path) -> tuple[Path, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(runs, rows), encoding="utf-8")
    md = path.with_suffix(".md")
    md.write_text(render_markdown(runs, rows), encoding="utf-8")
    return path, md
