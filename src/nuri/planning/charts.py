"""Inline SVG charts of an audit: nothing is fetched to view them, and they print.

Marks drawn are `rect.bar` and `circle.point`, which the report's script counts once laid out
(`data-drawn`), so a browser test can tell a chart was rendered, not only written.
"""

from __future__ import annotations

import html
from typing import Any

SOVEREIGN, GLOBAL, NONE = "#16a34a", "#2563eb", "#9ca3af"
MAX_WORKLOAD_BARS = 40


def _e(value: Any) -> str:
    return html.escape(str(value))


def _money(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


def _open(chart_id: str, label: str, w: int, h: int) -> str:
    return (f'<svg class="chart" id="{chart_id}" role="img" aria-label="{_e(label)}" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">')


def mix_chart(mix: dict[str, dict[str, float]], currency: str) -> str:
    """Two panels: requests per month and cost per month, sovereign vs global (vs unplanned)."""
    kinds = [("sovereign", SOVEREIGN), ("global", GLOBAL), ("unplanned", NONE)]
    w, h, top, bottom, panel = 560, 260, 30, 40, 260
    out = [_open("chart-mix", "volume and cost, sovereign vs global", w, h)]
    for p, (metric, title) in enumerate((("requests", "requests / month"), ("cost", f"cost / month ({currency})"))):
        x0 = 20 + p * panel
        peak = max([mix[k][metric] for k, _ in kinds] + [1e-9])
        out.append(f'<text x="{x0 + 110}" y="16" font-size="12" text-anchor="middle">{_e(title)}</text>')
        for i, (kind, color) in enumerate(kinds):
            value = mix[kind][metric]
            bh = (h - top - bottom) * value / peak
            x, y = x0 + 20 + i * 70, h - bottom - bh
            out.append(f'<rect class="bar" x="{x}" y="{y:.1f}" width="50" height="{max(bh, 0.5):.1f}" fill="{color}">'
                       f'<title>{kind}: {_money(value)}</title></rect>')
            out.append(f'<text x="{x + 25}" y="{y - 4:.1f}" font-size="10" text-anchor="middle">{_money(value)}</text>')
            out.append(f'<text x="{x + 25}" y="{h - bottom + 14}" font-size="11" text-anchor="middle">{kind}</text>')
        out.append(f'<line x1="{x0 + 10}" x2="{x0 + 240}" y1="{h - bottom}" y2="{h - bottom}" stroke="#111"/>')
    out.append("</svg>")
    return "".join(out)


def workload_cost_chart(rows: list[dict[str, Any]], currency: str) -> str:
    """Horizontal bars: the recommended deployment's monthly cost per workload, most expensive first."""
    shown = sorted(rows, key=lambda r: -(r["cost"] or 0))[:MAX_WORKLOAD_BARS]
    left, bar, w = 190, 18, 620
    h = 40 + len(shown) * (bar + 4)
    peak = max([r["cost"] or 0 for r in shown] + [1e-9])
    out = [_open("chart-cost", "monthly cost per workload", w, h)]
    for i, r in enumerate(shown):
        y = 10 + i * (bar + 4)
        cost = r["cost"] or 0
        bw = (w - left - 90) * cost / peak
        color = NONE if r["sovereign"] is None else (SOVEREIGN if r["sovereign"] else GLOBAL)
        out.append(f'<text x="{left - 6}" y="{y + 13}" font-size="11" text-anchor="end">{_e(r["name"][:28])}</text>')
        out.append(f'<rect class="bar" x="{left}" y="{y}" width="{max(bw, 0.5):.1f}" height="{bar}" fill="{color}">'
                   f'<title>{_e(r["name"])}: {_e(r["deployment"] or "no recommendation")} {_money(cost)}</title></rect>')
        out.append(f'<text x="{left + bw + 4:.1f}" y="{y + 13}" font-size="10">{_money(cost)} '
                   f'{_e(r["deployment"] or "—")}</text>')
    if len(rows) > len(shown):
        out.append(f'<text x="{left}" y="{h - 8}" font-size="11">the {len(shown)} most expensive of {len(rows)}</text>')
    out.append("</svg>")
    return "".join(out)


def quality_cost_chart(points: list[dict[str, Any]], currency: str) -> str:
    """Scatter: mean eval score (with the mean 95% interval) against list price per million tokens."""
    w, h, left, bottom, top, right = 620, 320, 60, 50, 20, 170
    plot_w, plot_h = w - left - right, h - top - bottom
    scored = [p for p in points if p["score"] is not None]
    peak = max([p["price"] for p in points] + [1e-9]) * 1.1
    out = [_open("chart-quality", "quality vs cost per deployment", w, h)]
    for t in range(0, 11, 2):
        y = top + plot_h * (1 - t / 10)
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{t / 10:.1f}</text>')
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#111"/>')
    out.append(f'<text x="{left + plot_w / 2}" y="{h - 12}" font-size="11" text-anchor="middle">'
               f'list price per 1M tokens (input + output, {_e(currency)})</text>')
    for i, p in enumerate(scored):
        x = left + plot_w * p["price"] / peak
        y = top + plot_h * (1 - p["score"])
        color = SOVEREIGN if p["sovereign"] else GLOBAL
        if p["ci_low"] is not None and p["ci_high"] is not None:
            y1, y2 = top + plot_h * (1 - p["ci_low"]), top + plot_h * (1 - p["ci_high"])
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y1:.1f}" y2="{y2:.1f}" stroke="{color}"/>')
        out.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{color}"><title>{_e(p["id"])}: '
                   f'{p["score"]:.3f} at {p["price"]:g}</title></circle>')
        out.append(f'<text x="{left + plot_w + 12}" y="{top + 14 + i * 16}" font-size="11" fill="{color}">'
                   f'● {_e(p["id"])}</text>')
    if not scored:
        out.append(f'<text x="{left + 10}" y="{top + 20}" font-size="12">no eval results</text>')
    out.append("</svg>")
    return "".join(out)
