"""The drift report as one self-contained HTML page: verdicts first, then the evidence.

No JavaScript and no external assets: the plots are inline SVG, so the page opens anywhere (a
browser, an MLflow artifact view, a mail attachment) and prints. Order: the verdicts (drift, decay,
skew) in a banner, trends over the last windows, the score table, then per feature the reference and
current histograms, most drifted first.
"""

from __future__ import annotations

from html import escape
from typing import Any

REFERENCE, CURRENT, ALERT = "#4c72b0", "#dd8452", "#c44e52"
OK, NEUTRAL = "#55a868", "#8c8c8c"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 10 ** (-digits) or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return escape(str(value))


def histogram_svg(labels: list[str], reference: list[float], current: list[float], title: str) -> str:
    """Grouped bars: the reference's and the current window's share per bin or category."""
    width, height, top, bottom, left = 420, 190, 22, 46, 36
    n = max(len(labels), 1)
    peak = max([*reference, *current, 1e-9])
    slot = (width - left - 8) / n
    bar = max(slot * 0.38, 1.0)
    plot_h = height - top - bottom
    parts = [
        f'<svg class="hist" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="14" class="t">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 4}" y2="{top + plot_h}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 8}" class="a" text-anchor="end">{peak:.0%}</text>',
    ]
    for i, label in enumerate(labels):
        x = left + i * slot + slot * 0.1
        for j, (share, colour) in enumerate(((reference[i], REFERENCE), (current[i], CURRENT))):
            h = plot_h * share / peak
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{escape(label)}: {share:.1%}</title></rect>'
            )
        if n <= 12 or i % max(n // 12, 1) == 0:
            parts.append(
                f'<text x="{x + bar:.1f}" y="{top + plot_h + 12}" class="a" text-anchor="end" '
                f'transform="rotate(-35 {x + bar:.1f} {top + plot_h + 12})">{escape(label[:14])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def line_svg(
    series: dict[str, list[float | None]], labels: list[str], title: str, y_max: float | None = None
) -> str:
    """Lines over windows (None: no value for that window)."""
    width, height, top, bottom, left = 560, 200, 22, 40, 44
    values = [v for s in series.values() for v in s if v is not None]
    lo = min([*values, 0.0])
    hi = y_max if y_max is not None else max([*values, 1e-9])
    hi = hi if hi > lo else lo + 1
    n = max(len(labels), 2)
    plot_w, plot_h = width - left - 10, height - top - bottom
    colours = [CURRENT, REFERENCE, ALERT, OK]
    parts = [
        f'<svg class="trend" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="14" class="t">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 8}" class="a" text-anchor="end">{hi:.2f}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" class="a" text-anchor="end">{lo:.2f}</text>',
    ]

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + plot_w * i / (n - 1), top + plot_h * (1 - (v - lo) / (hi - lo))

    for k, (name, points) in enumerate(series.items()):
        colour = colours[k % len(colours)]
        coords = [xy(i, v) for i, v in enumerate(points) if v is not None]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in coords)
        parts.append(
            f'<text x="{left + 8 + 150 * k}" y="{height - 4}" class="a" fill="{colour}">■ {escape(name)}</text>'
        )
    for i, label in enumerate(labels):
        if len(labels) <= 8 or i % max(len(labels) // 8, 1) == 0:
            x, _ = xy(i, lo)
            parts.append(
                f'<text x="{x:.1f}" y="{top + plot_h + 14}" class="a" text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _badge(state: bool | None, yes: str, no: str, none: str) -> str:
    colour, text = {True: (ALERT, yes), False: (OK, no), None: (NEUTRAL, none)}[state]
    return f'<span class="badge" style="background:{colour}">{escape(text)}</span>'


def render(report: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """The page for one drift run; `history` is the earlier runs' summaries (oldest first)."""
    verdict = report["verdict"]
    decay = report.get("decay") or {}
    skew = report.get("skew") or {}
    trend = [*history, report["summary"]][-20:]
    labels = [h["window_end"][5:10] for h in trend]
    banner = " ".join(
        [
            _badge(verdict["drifted"], "DRIFT", "no drift", "no drift verdict"),
            _badge(report["summary"]["event"], "retrain event sent", "no event", "no event"),
            _badge(decay.get("decayed"), "DECAY", "no decay", "no decay verdict"),
            _badge(skew.get("skewed") if skew else None, "SKEW", "no skew", "skew not checked"),
        ]
    )
    rows = []
    for f in report["features"]:
        style = ' class="drifted"' if f["drifted"] else ""
        rows.append(
            f"<tr{style}><td>{escape(f['name'])}</td><td>{_fmt(f['drifted'])}</td><td>{escape(f['test'])}</td>"
            f"<td>{_fmt(f['p_value'])}</td><td>{_fmt(f['psi'])}</td><td>{_fmt(f['jensenshannon'])}</td>"
            f"<td>{_fmt(f['ks_p_value'])}</td><td>{_fmt(f['wasserstein'])}</td>"
            f"<td>{_fmt(f['missing_share_change'])}</td><td>{_fmt(f['unseen_share'])}</td>"
            f"<td>{escape('; '.join(f['notes']))}</td></tr>"
        )
    plots = [
        histogram_svg(h["labels"], h["reference"], h["current"], f"{name}")
        for name in [f["name"] for f in report["features"]]
        if (h := report["histograms"].get(name))
    ]
    trends = [
        line_svg(
            {"share of features drifted": [h["share"] for h in trend]}, labels, "Drift share by window", 1.0
        ),
        line_svg(
            {
                **(
                    {
                        "window MAE": [h.get("mae") for h in trend],
                        "holdout MAE": [h.get("holdout_mae") for h in trend],
                    }
                    if any(h.get("holdout_mae") is not None for h in trend)
                    else {
                        "window ROC AUC": [h.get("auc") for h in trend],
                        "holdout ROC AUC": [h.get("holdout_auc") for h in trend],
                    }
                ),
            },
            labels,
            "Model quality on delayed labels",
        ),
    ]
    calibration = ""
    if decay.get("calibration"):
        table = decay["calibration"]
        calibration = "<h2>Calibration on this window's labels</h2>" + line_svg(
            {
                "observed rate": [c["observed_rate"] for c in table],
                "mean predicted": [c["mean_predicted"] for c in table],
            },
            [f"{c['bin_low']:.1f}" for c in table],
            "Observed positive rate against predicted probability (bins)",
            1.0,
        )
    skew_rows = "".join(
        f"<tr><td>{escape(v['view'])}</td><td>{v.get('checked', 0)}</td>"
        f"<td>{sum(f['mismatches'] for f in v.get('features', {}).values())}</td>"
        f"<td>{escape(v.get('note', ''))}{escape('; '.join(str(e) for e in v.get('examples', [])))}</td></tr>"
        for v in skew.get("views", [])
    )
    absent = ", ".join(report["absent"]) or "none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>featureloop drift: {escape(report["model"]["name"])} v{escape(report["model"]["version"])}, {escape(report["window"]["start"])}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1320px; }}
h1 {{ font-size: 20px; margin-bottom: 4px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
.badge {{ color: #fff; padding: 3px 10px; border-radius: 10px; margin-right: 6px; font-weight: 600; }}
table {{ border-collapse: collapse; font-size: 12px; }} td, th {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }}
td:first-child, th:first-child, td:last-child {{ text-align: left; }} tr.drifted td {{ background: #fbe9e9; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 8px; }} svg {{ background: #fafafa; border: 1px solid #eee; }}
svg .t {{ font-size: 12px; font-weight: 600; }} svg .a {{ font-size: 10px; fill: #555; }}
.legend span {{ margin-right: 16px; }}
</style></head><body>
<h1>Drift report: model {escape(report["model"]["name"])} version {escape(report["model"]["version"])}</h1>
<p>Window {escape(report["window"]["start"])} to {escape(report["window"]["end"])}: {report["rows"]:,} served rows ·
feature service {escape(report["model"].get("feature_service", ""))} · generated {escape(report["generated_at"])}</p>
<p>{banner}</p>
<p><b>Drift:</b> {escape(verdict["reason"])}. <b>Persistence:</b> {escape(report["summary"]["persistence"])}.<br>
<b>Delayed labels:</b> {escape(decay.get("reason", "not checked"))}.<br>
<b>Absent from the window:</b> {escape(absent)}.</p>
<h2>Trends over windows</h2><div class="plots">{"".join(trends)}</div>
{calibration}
<h2>Scores per feature</h2>
<table><tr><th>feature</th><th>drifted</th><th>test</th><th>p-value</th><th>PSI</th><th>Jensen-Shannon</th>
<th>KS p-value</th><th>Wasserstein/std</th><th>missing share change</th><th>unseen share</th><th>notes</th></tr>
{"".join(rows)}</table>
<h2>Reference and current distributions</h2>
<p class="legend"><span style="color:{REFERENCE}">■ reference (training)</span><span style="color:{CURRENT}">■ current window</span></p>
<div class="plots">{"".join(plots)}</div>
<h2>Online/offline skew</h2>
<table><tr><th>feature view</th><th>entities checked</th><th>mismatches</th><th>notes and examples</th></tr>{skew_rows}</table>
</body></html>
"""
