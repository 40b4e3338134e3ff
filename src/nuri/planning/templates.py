"""Jinja2 templates of the audit report, kept in Python so the package needs no data files."""

from __future__ import annotations

STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#111;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}h3{font-size:15px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #d1d5db;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f3f4f6}.charts{display:flex;flex-wrap:wrap;gap:24px}
.chart{border:1px solid #e5e7eb;background:#fff}figure{margin:0}figcaption{font-size:13px;margin-bottom:4px}
details.workload{border-bottom:1px solid #e5e7eb;padding:6px 0}summary{cursor:pointer;font-weight:600}
.sov{color:#16a34a}.glob{color:#2563eb}.none{color:#b91c1c}.muted{color:#6b7280}.err{color:#b91c1c}
.pill{display:inline-block;border-radius:4px;padding:0 5px;font-size:11px;color:#fff;background:#6b7280}
.pill.hi{background:#b45309}.pill.ok{background:#16a34a}.pill.no{background:#b91c1c}"""

SCRIPT = """window.addEventListener('load',function(){document.querySelectorAll('svg.chart').forEach(function(svg){
var drawn=0;svg.querySelectorAll('rect.bar,circle.point').forEach(function(el){var r=el.getBoundingClientRect();
if(r.width>0&&r.height>0)drawn++;});svg.setAttribute('data-drawn',drawn);});});"""

HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>{{ style }}</style><script>{{ script }}</script></head><body>
<h1>{{ title }}</h1>
<p>{{ n }} workloads · {{ deployments|length }} deployments · home jurisdiction {{ home }} ·
recommended: <span class="sov">{{ counts.sovereign }} sovereign</span>,
<span class="glob">{{ counts.global }} global</span>, <span class="none">{{ counts.none }} none</span> ·
planned cost {{ money(total_cost) }} {{ currency }}/month</p>
{% if inventory_errors %}<h2>Inventory rows not processed</h2><ul>
{% for e in inventory_errors %}<li class="err">{{ e }}</li>{% endfor %}</ul>{% endif %}
<div class="charts">
<figure><figcaption>Volume and cost per month, sovereign vs global</figcaption>{{ charts.mix|safe }}</figure>
<figure><figcaption>Cost per workload (recommended deployment)</figcaption>{{ charts.cost|safe }}</figure>
<figure><figcaption>Quality vs cost per deployment (mean eval score, 95% interval)</figcaption>
{{ charts.quality|safe }}</figure>
</div>
<h2>Workloads</h2>
<table id="workloads"><tr><th>workload</th><th>owner</th><th>data</th><th>grade</th><th>high-impact</th>
<th>recommended</th><th>cost / month</th><th>p95 ms</th><th>why</th></tr>
{% for w in audits %}<tr class="workload-row"><td>{{ w.workload.name }}</td><td>{{ w.workload.owner }}</td>
<td>{{ w.classification.categories|join(', ') or '—' }}</td><td>{{ w.classification.n2sf_grade }}</td>
<td>{% if w.high_impact %}<span class="pill hi">yes</span>{% else %}no{% endif %}</td>
<td>{% if w.recommended %}<span class="{{ 'sov' if w.recommended.sovereign else 'glob' }}">{{ w.recommended.deployment }}</span>
{% else %}<span class="none">none</span>{% endif %}</td>
<td>{{ money(w.monthly_cost) if w.recommended else '—' }}</td>
<td>{{ w.recommended.p95_ms if w.recommended and w.recommended.p95_ms is not none else '—' }}</td>
<td>{{ w.why }}</td></tr>{% endfor %}
</table>
<h2>Per workload</h2>
{% for w in audits %}<details class="workload" id="w-{{ w.workload.name }}"><summary>{{ w.workload.name }}
{% if w.workload.description %}<span class="muted">— {{ w.workload.description }}</span>{% endif %}</summary>
<p>Volume: {{ '{:,}'.format(w.workload.monthly.requests) }} requests,
{{ '{:,}'.format(w.workload.monthly.input_tokens) }} input and {{ '{:,}'.format(w.workload.monthly.output_tokens) }}
output tokens a month{% if w.workload.latency_ms %} · p95 target {{ w.workload.latency_ms|int }} ms{% endif %}
{% if w.workload.languages %} · languages {{ w.workload.languages|join(', ') }}{% endif %}</p>
<p>Classification ({{ w.workload.samples|length }} samples + declared): entities
{{ entity_list(w.classification.entities) }}; categories {{ w.classification.categories|join(', ') or 'none' }};
topics {{ w.classification.sensitive_topics|join(', ') or 'none' }}; grade {{ w.classification.n2sf_grade }};
domains {{ w.classification.domains|join(', ') or 'none' }}</p>
{% if w.high_impact %}<p><span class="pill hi">AI Basic Act high-impact</span> {{ w.high_impact_reasons|join('; ') }}</p>{% endif %}
{% if w.problems %}<p class="err">{{ w.problems|join('; ') }}</p>{% endif %}
<h3>Rules that apply</h3>{% if w.rules %}<ul>{% for r in w.rules %}<li><b>{{ r.id }}</b> ({{ r.action }},
{{ r.pack }}) — {{ r.citation }}</li>{% endfor %}</ul>{% else %}<p class="muted">none</p>{% endif %}
<h3>Deployments</h3><table class="deployments"><tr><th>deployment</th><th>where</th><th>status</th>
<th>quality</th><th>p95 ms</th><th>cost / month</th><th>scorecard</th><th>why not</th></tr>
{% for a in w.assessments %}<tr><td>{{ a.deployment }}</td><td>{{ a.jurisdiction }} {{ a.hosting }}</td>
<td>{% if w.recommended and a.deployment == w.recommended.deployment %}<span class="pill ok">recommended</span>
{% elif a.eligible %}eligible{% if a.mask_types %} (masked: {{ a.mask_types|join(', ') }}){% endif %}
{% else %}<span class="pill no">excluded</span>{% endif %}</td>
<td>{% for s in a.suites %}{{ s.describe() }}<br>{% else %}—{% endfor %}</td>
<td>{{ a.p95_ms if a.p95_ms is not none else '—' }}</td><td>{{ money(a.monthly_cost) }}</td>
<td>{{ '%.2f'|format(a.procurement_score) }}</td>
<td>{{ '' if w.recommended and a.deployment == w.recommended.deployment else a.why_not() }}</td></tr>{% endfor %}
</table>
{% if w.cross_border %}<h3>Cross-border transfer</h3><ul>{% for c in w.cross_border %}<li>{{ c }}</li>{% endfor %}
</ul>{% endif %}
{% if w.licence_problems %}<h3>Licence problems</h3><ul>{% for c in w.licence_problems %}<li class="err">{{ c }}</li>
{% endfor %}</ul>{% endif %}
</details>{% endfor %}
<h2>Procurement scorecards</h2>
<table id="scorecards"><tr><th>deployment</th><th>total</th>{% for c in criteria %}<th>{{ c }}</th>{% endfor %}</tr>
{% for card in scorecards %}<tr><td>{{ card.deployment }}</td><td>{{ '%.2f'|format(card.total) }}</td>
{% for c in card.criteria %}<td title="{{ c.evidence }}">{{ '%.2g'|format(c.score) }}</td>{% endfor %}</tr>{% endfor %}
</table>
</body></html>
"""

MARKDOWN = """# {{ title }}

{{ n }} workloads, {{ deployments|length }} deployments, home jurisdiction {{ home }}. Recommended:
{{ counts.sovereign }} sovereign, {{ counts.global }} global, {{ counts.none }} none. Planned cost
{{ money(total_cost) }} {{ currency }}/month.
{% if inventory_errors %}
## Inventory rows not processed
{% for e in inventory_errors %}
- {{ e }}
{%- endfor %}
{% endif %}
## Workloads

| workload | owner | grade | high-impact | recommended | cost / month | why |
|---|---|---|---|---|---:|---|
{% for w in audits -%}
| {{ w.workload.name }} | {{ w.workload.owner }} | {{ w.classification.n2sf_grade }} | {{ 'yes' if w.high_impact else 'no' }} | {{ w.recommended.deployment if w.recommended else 'none' }}{{ ' (sovereign)' if w.recommended and w.recommended.sovereign else (' (global)' if w.recommended else '') }} | {{ money(w.monthly_cost) if w.recommended else '—' }} | {{ w.why|replace('|', '/') }} |
{% endfor %}
{% for w in audits %}
### {{ w.workload.name }}

- Data: categories {{ w.classification.categories|join(', ') or 'none' }}; entities {{ entity_list(w.classification.entities) }}; grade {{ w.classification.n2sf_grade }}; domains {{ w.classification.domains|join(', ') or 'none' }}
- Rules: {% for r in w.rules %}{{ r.id }} ({{ r.citation }}){{ '; ' if not loop.last }}{% else %}none{% endfor %}
{%- if w.high_impact %}
- AI Basic Act high-impact: {{ w.high_impact_reasons|join('; ') }}
{%- endif %}
{%- for c in w.cross_border %}
- Cross-border: {{ c }}
{%- endfor %}
{%- for c in w.licence_problems %}
- Licence: {{ c }}
{%- endfor %}
{%- for a in w.assessments if not a.eligible %}
- Excluded {{ a.deployment }}: {{ a.why_not() }}
{%- endfor %}
{% endfor %}
## Procurement scorecards

| deployment | total |{% for c in criteria %} {{ c }} |{% endfor %}
|---|---:|{% for c in criteria %}---:|{% endfor %}
{% for card in scorecards -%}
| {{ card.deployment }} | {{ '%.2f'|format(card.total) }} |{% for c in card.criteria %} {{ '%.2g'|format(c.score) }} |{% endfor %}
{% endfor %}"""
