"""Charts as inline SVG drawn on the server: nothing to fetch, readable without JavaScript.

Each chart has a <title> and a text alternative, so a screen reader gets the numbers too.
"""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, HEIGHT, PAD = 720, 200, 36


def bars(points: list[tuple[str, int]], label: str) -> str:
    """Vertical bars, one per (x label, value); x labels every tenth bar."""
    top = max((v for _, v in points), default=0) or 1
    n = max(len(points), 1)
    step = (WIDTH - 2 * PAD) / n
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
             f'data-bars="{sum(1 for _, v in points if v)}"><title>{escape(label)}</title>',
             f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>',
             f'<text x="4" y="{PAD - 8}" class="tick">{top}</text>']
    for i, (x, v) in enumerate(points):
        h = (HEIGHT - 2 * PAD) * v / top
        left = PAD + i * step
        parts.append(f'<rect x="{left + 1:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{max(step - 2, 1):.1f}" '
                     f'height="{h:.1f}" class="bar"><title>{escape(x)}: {v}</title></rect>')
        if i % 10 == 0:
            parts.append(f'<text x="{left:.1f}" y="{HEIGHT - PAD + 14}" class="tick">{escape(x[-5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def quality_cost(board: list[dict[str, Any]], label: str) -> str:
    """Score (with its confidence interval) against cost per correct answer, one point per suite and model."""
    pts = [e for e in board if e.get("cost_per_correct") is not None]
    if not pts:
        pts = [dict(e, cost_per_correct=0.0) for e in board]
    if not pts:
        return ""
    cmax = max(e["cost_per_correct"] for e in pts) or 1.0
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 60}" role="img" aria-label="{escape(label)}" '
             f'data-points="{len(pts)}"><title>{escape(label)}</title>',
             f'<line x1="{PAD}" y1="{HEIGHT + 60 - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT + 60 - PAD}" class="axis"/>',
             f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT + 60 - PAD}" class="axis"/>',
             f'<text x="4" y="{PAD - 8}" class="tick">1.0</text>',
             f'<text x="{WIDTH - PAD - 60}" y="{HEIGHT + 60 - 8}" class="tick">{cmax:.4g}</text>']
    span_y = HEIGHT + 60 - 2 * PAD

    def y(v: float) -> float:
        return HEIGHT + 60 - PAD - span_y * max(0.0, min(1.0, v))

    for e in pts:
        x = PAD + (WIDTH - 2 * PAD) * (e["cost_per_correct"] / cmax)
        name = f'{e["model"]} · {e["suite"]}: {e["score"]:.3f} [{e["ci_low"]:.3f}, {e["ci_high"]:.3f}]'
        parts.append(f'<line x1="{x:.1f}" y1="{y(e["ci_low"]):.1f}" x2="{x:.1f}" y2="{y(e["ci_high"]):.1f}" '
                     f'class="ci"/>')
        parts.append(f'<circle cx="{x:.1f}" cy="{y(e["score"]):.1f}" r="5" class="point"><title>{escape(name)}'
                     f'</title></circle>')
        parts.append(f'<text x="{x + 7:.1f}" y="{y(e["score"]) + 4:.1f}" class="tick">{escape(e["model"])}</text>')
    parts.append("</svg>")
    return "".join(parts)
