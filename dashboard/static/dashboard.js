// The featureloop dashboard: draws /api/live (Prometheus), /api/windows (drift runs) and /api/events
// (MLflow) with uPlot (vendored). Sets body[data-state] to "ready" once every panel is drawn, and each
// panel's data-series to how many series it drew (the browser test reads both).
"use strict";
// Any error, even one thrown while a chart draws later, marks the page (the browser test reads it).
let thisRefreshFailed = false;
window.addEventListener("error", (event) => {
  thisRefreshFailed = true;
  document.body.dataset.state = "error";
  document.body.dataset.error = String(event.message);
});
const COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"];
let charts = [];

function panel(parent, title) {
  const div = document.createElement("div");
  div.className = "panel";
  div.innerHTML = "<h3></h3>";
  div.querySelector("h3").textContent = title;
  parent.appendChild(div);
  return div;
}

function note(div, text, cls) {
  const p = document.createElement("p");
  p.className = cls || "note";
  p.textContent = text;
  div.appendChild(p);
}

// series: [{label, points: [[x, y], ...]}] -> one chart on the union of their x values.
const MOST = 10;  // series drawn per chart: the largest, when there are more (a note says how many)

function peak(s) {
  return Math.max(...s.points.map(p => (p[1] == null ? -Infinity : p[1])));
}

function chart(div, series, opts) {
  opts = opts || {};
  div.dataset.series = String(series.length);
  if (!series.length) { note(div, opts.empty || "no data yet"); return; }
  if (series.length > MOST) {
    note(div, "the " + MOST + " largest of " + series.length + " series");
    series = series.slice().sort((a, b) => peak(b) - peak(a)).slice(0, MOST);
  }
  const xs = Array.from(new Set(series.flatMap(s => s.points.map(p => p[0])))).sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const data = [xs];
  for (const s of series) {
    const ys = new Array(xs.length).fill(null);
    for (const [x, y] of s.points) ys[index.get(x)] = y;
    data.push(ys);
  }
  const width = Math.max(div.clientWidth - 16, 300);
  const u = new uPlot({
    width, height: 200,
    scales: {
      // One window alone would stretch the axis over years: a week either side of it.
      x: { time: true, range: opts.range ? () => opts.range : xs.length === 1 ? () => [xs[0] - 604800, xs[0] + 604800] : undefined },
      y: opts.log ? { distr: 3, range: () => [1e-16, 1] } : {},
    },
    axes: [{}, opts.log ? { size: 60, values: (u, vals) => vals.map(v => (v == null ? "" : v.toExponential(0))) } : { size: 60 }],
    legend: { live: false },
    series: [{}].concat(series.map((s, i) => ({
      label: s.label, stroke: COLOURS[i % COLOURS.length], width: 1.5, spanGaps: true, points: { size: 5 },
    }))),
  }, data, div);
  charts.push(u);
}

async function get(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(url + " answered " + response.status);
  return response.json();
}

function drawLive(body) {
  const root = document.getElementById("live");
  root.innerHTML = "";
  for (const p of body.panels) {
    const div = panel(root, p.title);
    chart(div, p.series, { range: [body.start, body.end], empty: "no series in this range (is serving answering, and Prometheus scraping it?)" });
    for (const e of p.errors) note(div, e, "error");
  }
}

function drawWindows(body) {
  const root = document.getElementById("windows");
  root.innerHTML = "";
  const xs = body.windows.map(w => Date.parse(w.window_end) / 1000);
  const line = (label, values) => ({ label, points: xs.map((x, i) => [x, values[i] == null ? null : values[i]]) });
  const none = "no drift run yet (the drift flow writes them; make demo replays a year)";
  let div = panel(root, "PSI per feature (the most drifted over the history)");
  chart(div, xs.length ? body.features.map(f => line(f, body.psi[f])) : [], { empty: none });
  div = panel(root, "KS p-value per feature (log scale; below 0.01 is a significant change)");
  chart(div, xs.length ? body.features.map(f => line(f, body.ks_p_value[f].map(v => v == null ? null : Math.max(v, 1e-16)))) : [], { empty: none, log: true });
  div = panel(root, "Dataset drift share (weighted share of drifted features)");
  chart(div, xs.length ? [line("share", body.windows.map(w => w.share))] : [], { empty: none });
  div = panel(root, "ROC AUC on delayed labels, and the holdout's (decay is the gap)");
  chart(div, xs.length ? [line("window AUC", body.windows.map(w => w.auc)), line("holdout AUC", body.windows.map(w => w.holdout_auc))] : [], { empty: none });
  div = panel(root, "Drift verdicts, events (1) and held events");
  chart(div, xs.length ? [
    line("drifted", body.windows.map(w => w.drifted == null ? null : Number(w.drifted))),
    line("event", body.windows.map(w => Number(!!w.event))),
    line("held (a release was live)", body.windows.map(w => Number(!!w.held))),
  ] : [], { empty: none });
}

function drawEvents(body) {
  const tbody = document.querySelector("#events tbody");
  tbody.innerHTML = "";
  const section = document.getElementById("events");
  section.dataset.series = String(body.events.length);
  section.querySelectorAll("p.error").forEach(p => p.remove());  // the last refresh's
  if (body.error) note(section, body.error, "error");
  for (const e of body.events) {
    const tr = document.createElement("tr");
    for (const [value, cls] of [[e.at || "", ""], ["v" + e.version, ""], [e.kind, ""], [e.what, ""], [e.detail, "detail"]]) {
      const td = document.createElement("td");
      td.textContent = value;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
}

async function refresh() {
  const minutes = document.getElementById("range").value;
  const status = document.getElementById("status");
  charts.forEach(u => u.destroy());
  charts = [];
  thisRefreshFailed = false;
  try {
    const [live, windows, events] = await Promise.all([get("/api/live?minutes=" + minutes), get("/api/windows"), get("/api/events")]);
    drawLive(live);
    drawWindows(windows);
    drawEvents(events);
    status.textContent = "updated " + new Date().toLocaleTimeString() + " from " + live.prometheus;
    // An error of this refresh (window "error" event) marks the page; a clean refresh clears it.
    document.body.dataset.state = thisRefreshFailed ? "error" : "ready";
  } catch (err) {
    status.textContent = "error: " + err.message;
    document.body.dataset.state = "error";
  }
}

document.getElementById("range").addEventListener("change", refresh);
refresh();
setInterval(refresh, 30000);
