"""One self-contained HTML page from a JSON report: no CDN, no network, inline CSS, SVG and script.

At the top the run's settings, its gates and the figures (each with how many cases it stands on),
a chart of the confusion matrix and one of the latency distribution; then the figures per suite
and per tag; then a table of cases, failing first, filterable by text, outcome, suite and status,
where each row opens into the reasons, the answer, its citations and the retrieved passages.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from assistant.evaluation.metrics import LATENCY, METRICS

STATUS_COLOURS = {"answered": "#1b6e3a", "not_covered": "#6b5500", "out_of_scope": "#3d4f8f", "urgent": "#a1161b", "error": "#555"}

CSS = """
:root { --fg:#1c1f23; --muted:#555d66; --line:#d4d8dd; --bg:#fff; --soft:#f4f6f8; --pass:#1b6e3a; --fail:#a1161b; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); margin: 0; padding: 24px 32px 64px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; }
.meta { color: var(--muted); font-size: 13px; margin: 0 0 14px; } .meta code { font-size: 12px; }
.gates { display: flex; flex-wrap: wrap; gap: 8px; margin: 10px 0 4px; padding: 0; list-style: none; }
.gates li { padding: 4px 10px; border-radius: 14px; font-size: 13px; border: 1px solid; }
.gates li.ok { color: var(--pass); border-color: var(--pass); background: #eaf6ee; }
.gates li.no { color: var(--fail); border-color: var(--fail); background: #fcecec; font-weight: 600; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(165px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; background: var(--soft); }
.card .name { font-size: 12px; color: var(--muted); font-family: ui-monospace, monospace; }
.card .value { font-size: 24px; font-weight: 650; margin: 2px 0; }
.card .n { font-size: 12px; color: var(--muted); overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
.charts { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; }
.charts figure { margin: 0; } .charts figcaption { font-size: 13px; color: var(--muted); margin-bottom: 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; font-size: 14px; }
th { background: var(--soft); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; }
.pass { background: var(--pass); } .fail { background: var(--fail); }
.status { font-family: ui-monospace, monospace; font-size: 13px; font-weight: 600; }
.filters { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; margin: 8px 0 12px; padding: 10px; background: var(--soft); border-radius: 8px; }
.filters label { font-size: 13px; color: var(--muted); display: flex; gap: 6px; align-items: center; }
.filters input, .filters select { font: inherit; padding: 4px 6px; border: 1px solid #8a929b; border-radius: 4px; background: #fff; }
.filters input { width: 260px; }
#shown { margin-left: auto; font-size: 13px; color: var(--muted); }
tr.case { cursor: pointer; } tr.case:hover { background: #f0f4fa; }
tr.case button { font: inherit; font-size: 12px; padding: 2px 8px; border: 1px solid #8a929b; border-radius: 4px; background: #fff; cursor: pointer; }
tr.detail > td { background: #fbfbfc; padding: 12px 16px 18px; }
.reasons { color: var(--fail); margin: 0 0 10px; padding-left: 18px; }
.answer { white-space: pre-wrap; background: #fff; border: 1px solid var(--line); border-left: 4px solid #3d4f8f; padding: 8px 12px; margin: 6px 0 12px; font-size: 14px; }
.passages td { font-size: 13px; } .passages .text { color: #333; max-width: 640px; }
.cited { font-weight: 700; } .expected-src { background: #eaf6ee; }
details summary { cursor: pointer; color: var(--muted); font-size: 13px; }
.small { font-size: 12px; color: var(--muted); }
"""

SCRIPT = """
(function () {
  const q = document.getElementById('filter'), outcome = document.getElementById('outcome'),
        suite = document.getElementById('suite'), status = document.getElementById('status'),
        shown = document.getElementById('shown');
  const rows = Array.from(document.querySelectorAll('tr.case'));
  function apply() {
    const text = q.value.trim().toLowerCase();
    let n = 0;
    for (const row of rows) {
      const ok = (!text || row.dataset.text.includes(text)) &&
                 (outcome.value === 'all' || row.dataset.outcome === outcome.value) &&
                 (suite.value === 'all' || row.dataset.suite === suite.value) &&
                 (status.value === 'all' || row.dataset.status === status.value);
      row.hidden = !ok;
      const detail = document.getElementById(row.dataset.detail);
      if (!ok) { detail.hidden = true; row.querySelector('button').setAttribute('aria-expanded', 'false'); }
      n += ok;
    }
    shown.textContent = n + ' of ' + rows.length + ' cases shown';
  }
  for (const el of [q, outcome, suite, status]) el.addEventListener('input', apply);
  for (const row of rows) {
    row.addEventListener('click', function () {
      const detail = document.getElementById(row.dataset.detail), button = row.querySelector('button');
      detail.hidden = !detail.hidden;
      button.setAttribute('aria-expanded', String(!detail.hidden));
      button.textContent = detail.hidden ? 'Open' : 'Close';
    });
  }
  apply();
})();
"""


def _value(name: str, fig: dict[str, Any]) -> str:
    v = fig["value"]
    if v is None:
        return "–"
    if name in LATENCY:
        return f"{v:.0f} ms"
    if name == "mrr":
        return f"{v:.3f}"
    return f"{v:.1%}"


def _stands(fig: dict[str, Any]) -> str:
    if fig["n"] == fig["cases"]:
        return f"n = {fig['n']} {fig['of']}"
    return f"n = {fig['n']} {fig['of']} ({fig['cases']} cases)"


def _confusion_svg(conf: dict[str, Any]) -> str:
    rows, cols, counts = conf["rows"], conf["columns"], conf["counts"]
    cell, left, top = 64, 118, 86
    width, height = left + cell * len(cols) + 10, top + cell * len(rows) + 10
    peak = max([max(r) for r in counts] + [1])
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="Confusion matrix: expected status by status got" font-family="system-ui, sans-serif" font-size="12">']
    out.append(f'<text x="{left + cell * len(cols) / 2}" y="14" text-anchor="middle" fill="#555d66">status got →</text>')
    for j, c in enumerate(cols):
        x = left + j * cell + cell / 2
        out.append(f'<text x="{x}" y="{top - 8}" text-anchor="start" transform="rotate(-35 {x} {top - 8})" fill="#1c1f23">{escape(c)}</text>')
    out.append(f'<text x="4" y="{top - 8}" fill="#555d66">expected ↓</text>')
    for i, r in enumerate(rows):
        y = top + i * cell
        out.append(f'<text x="{left - 8}" y="{y + cell / 2 + 4}" text-anchor="end" fill="#1c1f23">{escape(r)}</text>')
        for j, c in enumerate(cols):
            n = counts[i][j]
            share = n / peak
            if n == 0:
                fill = "#f4f6f8"
            elif r == c:
                fill = f"rgba(27,110,58,{0.18 + 0.82 * share:.2f})"
            else:
                fill = f"rgba(161,22,27,{0.18 + 0.82 * share:.2f})"
            ink = "#fff" if n and share > 0.45 else "#1c1f23"
            out.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" rx="3" fill="{fill}"><title>expected {escape(r)}, got {escape(c)}: {n}</title></rect>')
            out.append(f'<text x="{left + j * cell + cell / 2 - 1}" y="{y + cell / 2 + 4}" text-anchor="middle" fill="{ink}" font-size="14" font-weight="600">{n}</text>')
    out.append("</svg>")
    return "".join(out)


def _latency_svg(cases: list[dict[str, Any]], p50: float | None, p95: float | None) -> str:
    values = sorted(c["latency_ms"] for c in cases if c["got"]["status"] != "error")
    width, height, left, bottom, top = 460, 220, 40, 34, 14
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="Latency distribution" font-family="system-ui, sans-serif" font-size="11">']
    if not values:
        out.append('<text x="10" y="20">no latencies</text></svg>')
        return "".join(out)
    hi = max(values) * 1.02 or 1.0
    bins = 24
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int(v / hi * bins))] += 1
    peak = max(counts)
    plot_w, plot_h = width - left - 10, height - top - bottom
    bw = plot_w / bins
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#8a929b"/>')
    for i, n in enumerate(counts):
        h = plot_h * n / peak
        out.append(f'<rect x="{left + i * bw + 1:.1f}" y="{top + plot_h - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" fill="#3d4f8f"><title>{hi * i / bins:.0f}–{hi * (i + 1) / bins:.0f} ms: {n}</title></rect>')
    for k in range(5):
        x = left + plot_w * k / 4
        out.append(f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle" fill="#555d66">{hi * k / 4:.0f}</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" fill="#555d66">milliseconds per question ({len(values)} cases)</text>')
    out.append(f'<text x="{left - 6}" y="{top + 8}" text-anchor="end" fill="#555d66">{peak}</text>')
    for row, (label, v, colour) in enumerate((("p50", p50, "#1b6e3a"), ("p95", p95, "#a1161b"))):
        if v is not None:
            x = left + plot_w * v / hi
            out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="{colour}" stroke-width="2" stroke-dasharray="4 3"/>')
            end = x > left + plot_w * 0.7  # near the right edge: the label goes left of the line
            out.append(
                f'<text x="{x - 4 if end else x + 4:.1f}" y="{top + 12 + 14 * row}" text-anchor="{"end" if end else "start"}" fill="{colour}" '
                f'font-weight="600" stroke="#fff" stroke-width="3" paint-order="stroke">{label} {v:.0f} ms</text>'
            )
    out.append("</svg>")
    return "".join(out)


def _figures_table(groups: dict[str, dict[str, Any]], label: str) -> str:
    names = ["status_accuracy", "hit_at_1", "hit_at_3", "mrr", "citation_precision", "grounding_rate", "notice_compliance", "urgent_recall", "false_urgent_rate", "latency_p50_ms"]
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    body = []
    for g, info in groups.items():
        cells = []
        for n in names:
            fig = info["metrics"][n]
            cells.append(f'<td class="num" title="{escape(_stands(fig))}">{_value(n, fig)} <span class="small">({fig["n"]})</span></td>')
        body.append(f"<tr><td>{escape(g)}</td><td class='num'>{info['cases']}</td>{''.join(cells)}</tr>")
    return f"<div class='scroll'><table><thead><tr><th>{label}</th><th>cases</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def _status(s: str | None) -> str:
    s = s or "?"
    return f'<span class="status" style="color:{STATUS_COLOURS.get(s, "#1c1f23")}">{escape(s)}</span>'


def _case_rows(i: int, c: dict[str, Any]) -> str:
    outcome = "pass" if c["passed"] else "fail"
    text = " ".join([c["id"], c["suite"], c["question"], " ".join(c["tags"]), " ".join(c["reasons"]), c["got"]["status"] or ""]).lower()
    detail_id = f"d{i}"
    reasons = "".join(f"<li>{escape(r)}</li>" for r in c["reasons"])
    history = ""
    if c["history"]:
        history = "<p class='small'>history: " + " · ".join(f"<b>{escape(t['role'])}</b>: {escape(t['content'])}" for t in c["history"]) + "</p>"
    expected = set(c["expected"]["sources"])
    cited = set(c["got"]["sources"])
    citations = "".join(
        f"<li><b>[{x['n']}]</b> {escape(x['source'])} <span class='small'>relevance {x.get('score', 0):.3f}, characters {x['start']}–{x['end']}</span></li>"
        for x in c["citations"]
    )
    passages = []
    for p in c["retrieved"]:
        cls = " ".join(k for k, on in (("cited", p["source"] in cited), ("expected-src", p["source"] in expected)) if on)
        passages.append(
            f"<tr class='{cls}'><td class='num'>{p['rank']}</td><td>{escape(p['source'])}</td><td class='num'>{p['relevance']:.3f}</td>"
            f"<td class='num'>{p['dense']:.3f}</td><td class='num'>{p['lexical']:.2f}</td><td class='num'>{p['coverage']:.2f}</td>"
            f"<td class='text'>{escape(p['text'][:600])}{'…' if len(p['text']) > 600 else ''}</td></tr>"
        )
    if passages:
        retrieved = (
            "<table class='passages'><thead><tr><th>rank</th><th>source</th><th>relevance</th><th>dense</th><th>BM25</th>"
            "<th>coverage</th><th>passage</th></tr></thead><tbody>" + "".join(passages) + "</tbody></table>"
            "<p class='small'>Bold: cited. Green: an expected section.</p>"
        )
    elif c["retrieved_from"] == "citations":
        retrieved = "<p class='small'>The target did not return the retrieved passages; figures rank its citations.</p>"
    else:
        retrieved = "<p class='small'>Nothing retrieved (triage routed the question before retrieval, or it failed).</p>"
    triage = c.get("triage") or {}
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in (c.get("timings") or {}).items())
    detail = (
        f"<tr class='detail' id='{detail_id}' hidden><td colspan='7'>"
        f"<p><b>Question</b> ({escape(c['file'])}:{c['line']}): {escape(c['question'])}</p>{history}"
        + (f"<ul class='reasons'>{reasons}</ul>" if reasons else "<p class='small'>Every check passed.</p>")
        + f"<p class='small'>expected {escape(c['expected']['status'])}"
        + (f" from {escape(', '.join(c['expected']['sources']))}" if expected else "")
        + (f" · triage: {escape(str(triage.get('decision')))} / {escape(str(triage.get('rule')))} {escape(str(triage.get('matched')))}" if triage else "")
        + f" · {c['latency_ms']:.0f} ms" + (f" ({escape(timings)})" if timings else "") + "</p>"
        + f"<b>Answer</b><div class='answer'>{escape(c['answer'] or c['got'].get('error') or '')}</div>"
        + (f"<b>Citations</b><ul>{citations}</ul>" if citations else "")
        + f"<b>Retrieved passages</b>{retrieved}</td></tr>"
    )
    row = (
        f"<tr class='case' data-outcome='{outcome}' data-suite='{escape(c['suite'])}' data-status='{escape(c['got']['status'] or '')}' "
        f"data-text='{escape(text)}' data-detail='{detail_id}' data-key='{escape(c['key'])}'>"
        f"<td><span class='badge {outcome}'>{outcome}</span></td><td>{escape(c['suite'])}</td><td>{escape(c['id'])}</td>"
        f"<td>{escape(c['question'][:160])}{'…' if len(c['question']) > 160 else ''}</td><td>{_status(c['expected']['status'])}</td>"
        f"<td>{_status(c['got']['status'])}</td><td><button type='button' aria-expanded='false' aria-controls='{detail_id}'>Open</button></td></tr>"
    )
    return row + detail


def render(report: dict[str, Any]) -> str:
    s, summary, gates, cases = report["settings"], report["summary"], report.get("gates") or [], report["cases"]
    overall = summary["overall"]
    commit = s.get("commit") or {}
    meta = (
        f"target <code>{escape(str(s.get('target')))}</code> · model <code>{escape(str(s.get('model')))}</code> · corpus "
        f"<code>{escape(str(s.get('corpus_version')))}</code> · commit <code>{escape(str(commit.get('sha', 'unknown'))[:12])}</code>"
        + (" (with local changes)" if commit.get("dirty") else "")
        + f" · started {escape(str(s.get('started')))} · suites: {escape(', '.join(x['name'] for x in s.get('suites', [])))}"
    )
    if s.get("thresholds"):
        meta += "<br>thresholds: " + escape(", ".join(f"{k} {v}" for k, v in s["thresholds"].items()))
    gate_items = "".join(f"<li class='{'ok' if g['passed'] else 'no'}' title='{escape(g['message'])}'>{'✓' if g['passed'] else '✗'} {escape(g['gate'])}</li>" for g in gates)
    cards = "".join(
        f"<div class='card' title='{escape(METRICS[n][1])}'><div class='name'>{escape(n)}</div><div class='value'>{_value(n, overall[n])}</div><div class='n'>{escape(_stands(overall[n]))}</div></div>"
        for n in METRICS
    )
    ordered = sorted(cases, key=lambda c: (c["passed"], c["suite"], c["id"]))
    rows = "".join(_case_rows(i, c) for i, c in enumerate(ordered))
    suites = sorted({c["suite"] for c in cases})
    statuses = sorted({c["got"]["status"] or "" for c in cases})
    failed = sum(not c["passed"] for c in cases)
    options = lambda values: "".join(f"<option value='{escape(v)}'>{escape(v)}</option>" for v in values)  # noqa: E731
    title = f"PHT Assistant evaluation: {len(cases) - failed} of {len(cases)} cases passed"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p class="meta">{meta}</p>
<ul class="gates" aria-label="gates">{gate_items}</ul>
<h2>Figures</h2>
<div class="cards" id="metrics">{cards}</div>
<h2>Status and latency</h2>
<div class="charts">
<figure id="confusion"><figcaption>Confusion matrix ({summary['cases']} cases): rows expected, columns got; green agrees, red does not.</figcaption>{_confusion_svg(summary['confusion'])}</figure>
<figure id="latency"><figcaption>Latency distribution</figcaption>{_latency_svg(cases, overall['latency_p50_ms']['value'], overall['latency_p95_ms']['value'])}</figure>
</div>
<h2>Per suite</h2>
{_figures_table(summary['by_suite'], 'suite')}
<details><summary>Per tag ({len(summary['by_tag'])} tags)</summary>{_figures_table(summary['by_tag'], 'tag')}</details>
<h2>Cases ({failed} failing first)</h2>
<div class="filters" role="search">
<label>Search <input id="filter" type="search" placeholder="id, words of the question, tag, reason"></label>
<label>Outcome <select id="outcome"><option value="all">all</option><option value="fail">failing</option><option value="pass">passing</option></select></label>
<label>Suite <select id="suite"><option value="all">all</option>{options(suites)}</select></label>
<label>Status got <select id="status"><option value="all">all</option>{options(statuses)}</select></label>
<span id="shown" aria-live="polite"></span>
</div>
<table id="cases"><thead><tr><th>outcome</th><th>suite</th><th>id</th><th>question</th><th>expected</th><th>got</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>
<script>{SCRIPT}</script>
</body></html>
"""


def write_html(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report), encoding="utf-8")
