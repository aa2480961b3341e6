"""``report.html``: one self-contained review page for an output folder.

Rebuilt at the end of every run from the whole folder (like summary.json): totals, a table of
every page and failed input (sortable, filterable, paginated), and a page view with the overlay
beside a plot of the record's 12 leads as written to WFDB, with a reviewer's accept / reject per
page exported as ``review.csv`` from the browser (no server, no network: the script, styles and
data are inline; the page's images and signals lie beside it in ``report/``).

Per record, while the page is still in memory, the run writes:

    report/thumbs/<name>.jpg   the overlay, 800 px wide (the table's thumbnail and, without
                               --overlay, the page view's image)
    report/data/<name>.js      the record's signal at 250 Hz (int16 µV, base64), loaded by
                               the page view on demand (a script tag works from file://,
                               where fetch() does not)

With ``--anonymize`` the text outside the trace rows (header, footer) is blurred in every
image the report and the overlays show, and the report says so.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import cv2
import numpy as np

THUMB_WIDTH = 800
PLOT_FS = 250.0
REPORT_DIR = "report"


def thumbnail(img: np.ndarray) -> bytes:
    h, w = img.shape[:2]
    s = min(1.0, THUMB_WIDTH / w)
    small = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s))),
                       interpolation=cv2.INTER_AREA) if s < 1 else img
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 75])
    if not ok:
        raise ValueError("thumbnail could not be encoded")
    return buf.tobytes()


def signal_js(name: str, signal: np.ndarray, fs: float, leads) -> bytes:
    """The record at PLOT_FS as a script that registers itself with the report page."""
    step = max(1, int(round(fs / PLOT_FS)))
    n = len(signal) // step * step
    sig = np.asarray(signal[:n], np.float64).reshape(-1, step, signal.shape[1])
    ok = np.isfinite(sig)
    count = ok.sum(axis=1)
    with np.errstate(all="ignore"):  # a block with no sample stays NaN
        dec = np.where(ok, sig, 0).sum(axis=1) / np.where(count, count, np.nan)
    d = np.where(np.isfinite(dec), np.clip(np.round(dec * 1000), -32767, 32767), -32768)
    payload = dict(fs=fs / step, leads=list(leads), n=int(d.shape[0]),
                   data=base64.b64encode(d.astype("<i2").T.copy().tobytes()).decode())
    return (f"window.ecgSignal({json.dumps(name)}, {json.dumps(payload)});\n").encode()


def report_files(name: str, overlay_img: np.ndarray, signal: np.ndarray, fs: float,
                 leads) -> list[tuple[str, bytes]]:
    return [(f"{REPORT_DIR}/thumbs/{name}.jpg", thumbnail(overlay_img)),
            (f"{REPORT_DIR}/data/{name}.js", signal_js(name, signal, fs, leads))]


def has_report_files(out: Path, name: str) -> bool:
    return (out / REPORT_DIR / "thumbs" / f"{name}.jpg").is_file() and \
        (out / REPORT_DIR / "data" / f"{name}.js").is_file()


def page_row(name: str, q: dict, out: Path) -> dict:
    """What the report shows of one record (from its quality.json)."""
    qual = q["quality"]
    leads = {k: [v["status"], "; ".join(v["reasons"])] for k, v in qual["leads"].items()}
    ein = qual.get("einthoven") or {}
    fit = [v for v in ein.values() if v is not None]
    ref = q.get("reference") or {}
    return dict(name=name, source=q.get("source", ""), page=q.get("page"),
                status=qual["status"], reasons="; ".join(qual.get("reasons", [])),
                layout=q.get("layout"), gain=q.get("gain_mm_mv"),
                chest_gain=q.get("chest_gain_mm_mv"), px_per_mm=q.get("px_per_mm"),
                fit=round(max(fit), 3) if fit else None, warnings=q.get("warnings", []),
                leads=leads, snr=ref.get("snr_db"),
                overlay=(out / f"{name}.overlay.png").is_file(),
                thumb=has_report_files(out, name))


def write_report(out: Path, rows: list[dict], failed: list[dict], summary: dict,
                 anonymized: bool) -> bytes:
    """The report's HTML (the caller writes it atomically)."""
    data = dict(rows=rows, failed=failed, summary=summary, anonymized=anonymized,
                reportId=str(summary.get("model_sha256", ""))[:8] + ":" + str(out.name))
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return (_TEMPLATE.replace("__TITLE__", html.escape(f"digitize report: {out.name}"))
            .replace("__DATA__", blob)).encode("utf-8")


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
:root { --ok:#1a7f37; --warn:#b35900; --fail:#c62828; --not_ecg:#6a5acd; --error:#555; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { padding: 12px 20px; background: #fff; border-bottom: 1px solid #ddd; }
h1 { font-size: 18px; margin: 0 0 6px; }
.totals span { display: inline-block; margin-right: 14px; }
.totals b { font-size: 16px; }
.meta { color: #555; font-size: 12px; }
.privacy { background: #fff3cd; padding: 6px 10px; margin-top: 6px; border-radius: 4px; }
#filters { padding: 8px 20px; display: flex; gap: 10px; flex-wrap: wrap; align-items: center; }
#filters input, #filters select { padding: 3px 6px; }
table { border-collapse: collapse; margin: 0 20px; background: #fff; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 4px 8px; text-align: left; vertical-align: middle; }
th { cursor: pointer; user-select: none; background: #f0f0f0; position: sticky; top: 0; }
th.sorted-asc::after { content: " \25B2"; } th.sorted-desc::after { content: " \25BC"; }
tr.row:hover { background: #f5f9ff; cursor: pointer; }
img.thumb { width: 160px; display: block; }
.st { font-weight: 600; } .st.ok { color: var(--ok); } .st.warn { color: var(--warn); }
.st.fail { color: var(--fail); } .st.error { color: var(--error); } .st.not_ecg { color: var(--not_ecg); }
.chip { display: inline-block; min-width: 26px; padding: 0 3px; margin: 1px; border-radius: 3px;
        font-size: 11px; color: #fff; text-align: center; }
.chip.ok { background: var(--ok); } .chip.warn { background: var(--warn); } .chip.fail { background: var(--fail); }
.verdict-accept { outline: 3px solid var(--ok); } .verdict-reject { outline: 3px solid var(--fail); }
#pager { margin: 10px 20px; }
#view { display: none; padding: 10px 20px; }
#view .panes { display: flex; gap: 16px; align-items: flex-start; }
#view .panes > div { flex: 1 1 50%; min-width: 0; }
#view img { max-width: 100%; border: 1px solid #ccc; }
#plot { width: 100%; border: 1px solid #ccc; background: #fff; }
button { padding: 3px 10px; }
.hist { margin: 6px 0; }
kbd { border: 1px solid #bbb; border-radius: 3px; padding: 0 4px; font-size: 11px; }
</style></head>
<body>
<header>
  <h1>__TITLE__</h1>
  <div class="totals" id="totals"></div>
  <div class="meta" id="meta"></div>
  <div id="privacy"></div>
  <div id="snr"></div>
</header>
<section id="list">
  <div id="filters">
    <label>status <select id="f-status"><option value="">all</option>
      <option>ok</option><option>warn</option><option>fail</option><option>not_ecg</option>
      <option>error</option></select></label>
    <label>layout <select id="f-layout"><option value="">all</option></select></label>
    <label>reason <input id="f-reason" placeholder="text in reasons"></label>
    <label>name <input id="f-name" placeholder="part of the name"></label>
    <label>verdict <select id="f-verdict"><option value="">all</option>
      <option value="none">not reviewed</option><option>accept</option><option>reject</option></select></label>
    <span id="count"></span>
    <a id="download" href="#">download review.csv</a>
    <span class="meta">keys: <kbd>n</kbd>/<kbd>p</kbd> next/previous warn, <kbd>a</kbd> accept,
      <kbd>r</kbd> reject, <kbd>Esc</kbd> back to the list</span>
  </div>
  <table id="table"><thead><tr>
    <th data-k="thumb">page</th><th data-k="name">name</th><th data-k="status">status</th>
    <th data-k="leads">leads</th><th data-k="layout">layout</th><th data-k="fit">fit</th>
    <th data-k="gain">gain</th><th data-k="px_per_mm">px/mm</th><th data-k="snr">SNR</th>
    <th data-k="reasons">reasons</th></tr></thead><tbody id="tbody"></tbody></table>
  <div id="pager"></div>
</section>
<section id="view">
  <div><button id="back">&larr; list</button> <button id="prev">&lt; previous warn</button>
    <button id="next">next warn &gt;</button>
    <button id="accept">accept</button> <button id="reject">reject</button>
    <b id="v-name"></b> <span id="v-status" class="st"></span> <span id="v-verdict"></span></div>
  <div id="v-info" class="meta"></div>
  <div class="panes"><div><img id="v-img" alt="overlay"></div>
    <div><canvas id="plot" width="1000" height="760"></canvas></div></div>
</section>
<script id="report-data" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("report-data").textContent);
const LEADS = ["I","II","III","aVR","aVL","aVF","V1","V2","V3","V4","V5","V6"];
const PAGE = 50;
const KEY = "digitize-review:" + D.reportId;
const verdicts = JSON.parse(localStorage.getItem(KEY) || "{}");
const rows = D.rows.map(r => Object.assign({kind: "page"}, r)).concat(
  D.failed.map(f => ({kind: "error", name: f.input + (f.page ? " page " + f.page : ""),
                      status: f.status || "error", reasons: f.reason, layout: null, leads: {},
                      thumb: false})));
let state = {sort: "name", dir: 1, page: 0, filtered: rows, current: -1};
const $ = id => document.getElementById(id);
const esc = s => String(s == null ? "" : s).replace(/[&<>"']/g,
  c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));

function totals() {
  const f = D.summary.folder || {}, r = D.summary.run || {};
  const t = [["pages", f.records], ["ok", f.ok], ["warn", f.warn], ["fail", f.fail],
             ["not_ecg", f.not_ecg || 0], ["failed inputs", f.failed_inputs]];
  $("totals").innerHTML = t.map(([k, v]) => `<span>${k} <b>${v == null ? 0 : v}</b></span>`).join("");
  $("meta").textContent = `last run: ${r.converted || 0} converted, ${r.skipped || 0} already done, ` +
    `${r.failed || 0} failed in ${r.seconds} s (${r.pages_per_s} pages/s) on ${D.summary.provider}; ` +
    `model ${D.summary.model} (${String(D.summary.model_sha256).slice(0, 12)}); options ${D.summary.options}`;
  if (D.anonymized) $("privacy").innerHTML = '<div class="privacy">--anonymize: text outside ' +
    'the trace rows (header, footer) is blurred in these images and the overlays; names are ' +
    'hashes of the files.</div>';
  else $("privacy").innerHTML = '<div class="privacy">These images show the whole page, patient ' +
    'name and ID included: treat this report like the scans.</div>';
  const snr = D.rows.map(r => r.snr).filter(v => v != null);
  if (snr.length) $("snr").innerHTML = histogram(snr);
  const layouts = [...new Set(D.rows.map(r => r.layout).filter(Boolean))].sort();
  $("f-layout").innerHTML += layouts.map(l => `<option>${esc(l)}</option>`).join("");
}

function histogram(v) {
  const lo = Math.floor(Math.min(0, ...v) / 5) * 5, hi = Math.ceil(Math.max(30, ...v) / 5) * 5;
  const bins = []; for (let x = lo; x < hi; x += 2.5) bins.push([x, 0]);
  v.forEach(s => { const i = Math.min(bins.length - 1, Math.floor((s - lo) / 2.5)); bins[i][1]++; });
  const m = Math.max(...bins.map(b => b[1])), W = 12, H = 60;
  const sorted = [...v].sort((a, b) => a - b), med = sorted[Math.floor(sorted.length / 2)];
  const bars = bins.map((b, i) => `<rect x="${i * W}" y="${H - b[1] / m * H}" width="${W - 1}" ` +
    `height="${b[1] / m * H}" fill="#4a78c2"><title>${b[0]}–${b[0] + 2.5} dB: ${b[1]}</title></rect>`).join("");
  const ticks = bins.filter((b, i) => i % 4 == 0).map((b, j) =>
    `<text x="${j * 4 * W}" y="${H + 12}" font-size="10">${b[0]}</text>`).join("");
  return `<div class="hist">SNR against the reference (dB), ${v.length} records, median ` +
    `${med.toFixed(1)}:<br><svg width="${bins.length * W}" height="${H + 14}">${bars}${ticks}</svg></div>`;
}

function applyFilters() {
  const st = $("f-status").value, lay = $("f-layout").value, vd = $("f-verdict").value;
  const rs = $("f-reason").value.toLowerCase(), nm = $("f-name").value.toLowerCase();
  state.filtered = rows.filter(r => (!st || r.status === st) && (!lay || r.layout === lay) &&
    (!rs || (r.reasons + " " + (r.warnings || []).join(" ") + " " +
             Object.values(r.leads).map(l => l[1]).join(" ")).toLowerCase().includes(rs)) &&
    (!nm || r.name.toLowerCase().includes(nm)) &&
    (!vd || (vd === "none" ? !verdicts[r.name] : verdicts[r.name] === vd)));
  sortRows(); state.page = 0; render();
}

const ORDER = {ok: 0, warn: 1, fail: 2, not_ecg: 3, error: 4};
function sortKey(r, k) {
  if (k === "status") return ORDER[r.status];
  if (k === "leads") return Object.values(r.leads).filter(l => l[0] !== "ok").length;
  const v = r[k]; return v == null ? -Infinity : v;
}
function sortRows() {
  const k = state.sort, d = state.dir;
  state.filtered.sort((a, b) => { const x = sortKey(a, k), y = sortKey(b, k);
    return (x < y ? -1 : x > y ? 1 : 0) * d || (a.name < b.name ? -1 : 1); });
  document.querySelectorAll("th").forEach(th => th.className =
    th.dataset.k === k ? (d > 0 ? "sorted-asc" : "sorted-desc") : "");
}

function chips(r) {
  return LEADS.filter(l => r.leads[l]).map(l => { const [s, why] = r.leads[l];
    return `<span class="chip ${s}" title="${esc(l + ": " + s + (why ? " — " + why : ""))}">${l}</span>`; }).join("");
}

function render() {
  const f = state.filtered, n = Math.max(1, Math.ceil(f.length / PAGE));
  state.page = Math.min(state.page, n - 1);
  const part = f.slice(state.page * PAGE, (state.page + 1) * PAGE);
  $("tbody").innerHTML = part.map(r => {
    const v = verdicts[r.name];
    const img = r.thumb ? `<img class="thumb" loading="lazy" src="report/thumbs/${encodeURIComponent(r.name)}.jpg" alt="">` : "";
    return `<tr class="row${v ? " verdict-" + v : ""}" data-name="${esc(r.name)}" data-status="${r.status}">` +
      `<td>${img}</td><td>${esc(r.name)}<div class="meta">${esc(r.source || "")}</div></td>` +
      `<td class="st ${r.status}">${r.status}</td><td>${chips(r)}</td><td>${esc(r.layout || "")}</td>` +
      `<td>${r.fit == null ? "" : r.fit}</td><td>${r.gain == null ? "" : r.gain + (r.chest_gain ? " / " + r.chest_gain : "")}</td>` +
      `<td>${r.px_per_mm == null ? "" : r.px_per_mm.toFixed(2)}</td><td>${r.snr == null ? "" : r.snr.toFixed(1)}</td>` +
      `<td>${esc(r.reasons || "")}</td></tr>`; }).join("");
  $("count").textContent = `${f.length} of ${rows.length} shown`;
  $("pager").innerHTML = n > 1 ? Array.from({length: n}, (_, i) =>
    `<button data-p="${i}"${i === state.page ? " disabled" : ""}>${i + 1}</button>`).join(" ") : "";
}

const loaded = {};
window.ecgSignal = (name, s) => {
  const raw = atob(s.data), b = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) b[i] = raw.charCodeAt(i);
  loaded[name] = {fs: s.fs, n: s.n, leads: s.leads, v: new Int16Array(b.buffer)};
  if (state.current >= 0 && state.filtered[state.current].name === name) plot(name);
};

function plot(name) {
  const c = $("plot"), g = c.getContext("2d"), s = loaded[name];
  g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
  if (!s) { g.fillStyle = "#555"; g.fillText("loading…", 20, 20); return; }
  // the standard 12-lead grid: 4 columns (I-III, aVR-aVF, V1-V3, V4-V6) of 2.5 s, 3 rows, and
  // lead II over the full 10 s below
  const cols = [["I","II","III"],["aVR","aVL","aVF"],["V1","V2","V3"],["V4","V5","V6"]];
  // paper at 25 mm/s and 10 mm/mV: 5-mm squares
  const rowsY = 4, W = c.width, H = c.height, rh = H / rowsY, pxs = W / 10, mm = pxs / 25,
        pxmv = 10 * mm;
  g.strokeStyle = "#f3c5c5"; g.lineWidth = 0.5;
  for (let x = 0; x <= W; x += 5 * mm) { g.beginPath(); g.moveTo(x, 0); g.lineTo(x, H); g.stroke(); }
  for (let y = 0; y <= H; y += 5 * mm) { g.beginPath(); g.moveTo(0, y); g.lineTo(W, y); g.stroke(); }
  g.strokeStyle = "#111"; g.lineWidth = 1.2; g.fillStyle = "#000"; g.font = "14px sans-serif";
  const draw = (lead, t0, t1, x0, y0) => {
    const j = s.leads.indexOf(lead); g.fillText(lead, x0 + 4, y0 - rh / 2 + 16);
    if (j < 0) return;
    const a = Math.floor(t0 * s.fs), b = Math.min(s.n, Math.floor(t1 * s.fs)); let pen = false;
    g.beginPath();
    for (let i = a; i < b; i++) { const v = s.v[j * s.n + i];
      if (v === -32768) { pen = false; continue; }
      const x = x0 + (i - a) / s.fs * pxs, y = y0 - v / 1000 * pxmv;
      if (pen) g.lineTo(x, y); else g.moveTo(x, y); pen = true; }
    g.stroke();
  };
  cols.forEach((col, ci) => col.forEach((lead, ri) =>
    draw(lead, ci * 2.5, (ci + 1) * 2.5, ci * 2.5 * pxs, rh * ri + rh / 2)));
  draw("II", 0, 10, 0, rh * 3 + rh / 2);
  c.dataset.plotted = name;
}

function show(i) {
  state.current = i; const r = state.filtered[i];
  $("list").style.display = "none"; $("view").style.display = "block";
  $("v-name").textContent = r.name; $("v-status").textContent = r.status;
  $("v-status").className = "st " + r.status; $("v-verdict").textContent = verdicts[r.name] || "";
  $("v-info").innerHTML = r.kind === "error" ? esc(r.reasons) :
    `${esc(r.source)} · layout ${esc(r.layout)} · gain ${r.gain} mm/mV · ${r.px_per_mm} px/mm` +
    (r.snr != null ? ` · SNR ${r.snr.toFixed(1)} dB` : "") + `<br>${chips(r)} ${esc(r.reasons)}` +
    (r.warnings && r.warnings.length ? `<br>warnings: ${esc(r.warnings.join("; "))}` : "");
  const img = $("v-img");
  if (r.kind === "error") { img.removeAttribute("src"); }
  else img.src = r.overlay ? `${encodeURIComponent(r.name)}.overlay.png`
                           : `report/thumbs/${encodeURIComponent(r.name)}.jpg`;
  const c = $("plot"); c.dataset.plotted = "";
  if (r.kind === "error") { c.getContext("2d").clearRect(0, 0, c.width, c.height); return; }
  if (loaded[r.name]) plot(r.name);
  else { plot(r.name); const sc = document.createElement("script");
    sc.src = `report/data/${encodeURIComponent(r.name)}.js`; document.body.appendChild(sc); }
}

function back() { state.current = -1; $("view").style.display = "none"; $("list").style.display = "block"; render(); }
function step(d) {
  const f = state.filtered; let i = state.current;
  for (let k = 0; k < f.length; k++) { i = (i + d + f.length) % f.length;
    if (f[i].status === "warn") return show(i); }
}
function verdict(v) {
  if (state.current < 0) return; const name = state.filtered[state.current].name;
  if (verdicts[name] === v) delete verdicts[name]; else verdicts[name] = v;
  localStorage.setItem(KEY, JSON.stringify(verdicts)); $("v-verdict").textContent = verdicts[name] || "";
}
function downloadCsv(ev) {
  const q = s => '"' + String(s).replace(/"/g, '""') + '"';
  const lines = ["record,source,status,verdict"].concat(rows.filter(r => r.kind === "page").map(r =>
    [r.name, r.source, r.status, verdicts[r.name] || ""].map(q).join(",")));
  const a = $("download");
  a.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], {type: "text/csv"}));
  a.download = "review.csv";
}

totals();
["f-status", "f-layout", "f-verdict"].forEach(id => $(id).addEventListener("change", applyFilters));
["f-reason", "f-name"].forEach(id => $(id).addEventListener("input", applyFilters));
document.querySelectorAll("th").forEach(th => th.addEventListener("click", () => {
  state.dir = state.sort === th.dataset.k ? -state.dir : 1; state.sort = th.dataset.k; sortRows(); render(); }));
$("tbody").addEventListener("click", ev => { const tr = ev.target.closest("tr"); if (!tr) return;
  show(state.filtered.findIndex(r => r.name === tr.dataset.name)); });
$("pager").addEventListener("click", ev => { if (ev.target.dataset.p) { state.page = +ev.target.dataset.p; render(); } });
$("back").onclick = back; $("next").onclick = () => step(1); $("prev").onclick = () => step(-1);
$("accept").onclick = () => verdict("accept"); $("reject").onclick = () => verdict("reject");
$("download").addEventListener("click", downloadCsv);
document.addEventListener("keydown", ev => {
  if (ev.target.tagName === "INPUT") return;
  if (ev.key === "n") step(1); else if (ev.key === "p") step(-1);
  else if (ev.key === "a") verdict("accept"); else if (ev.key === "r") verdict("reject");
  else if (ev.key === "Escape") back();
});
applyFilters();
window.reportReady = performance.now();  // for benchmarks/report_speed.py
</script>
</body></html>
"""
