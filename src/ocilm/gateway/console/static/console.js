// The ocilm usage console: reads the admin API with the master key typed in (kept in this tab's
// sessionStorage only) and draws its tables and charts. No framework, nothing from a CDN.
"use strict";

const COLORS = ["#c74634", "#2e6fdb", "#2f9e6b", "#a15ce0", "#e09b2d", "#1f9bb0", "#7a7f8c", "#d6457a"];
const SVG = "http://www.w3.org/2000/svg";
let masterKey = sessionStorage.getItem("ocilm-master-key") || "";

async function api(path) {
  const response = await fetch(path, { headers: { authorization: `Bearer ${masterKey}` } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (body.error && body.error.message) || `HTTP ${response.status}`;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

const usd = (value) => (value == null ? "–" : `$${Number(value).toFixed(value >= 1 ? 2 : 6)}`);
const count = (value) => (value == null ? "–" : String(value));
const ms = (value) => (value == null ? "–" : Number(value).toFixed(1));

function fillTable(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren();
  if (!rows.length) {
    const columns = document.querySelectorAll(`#${id} thead th`).length;
    body.append(el("tr", {}, el("td", { colspan: columns, class: "empty" }, "Nothing yet.")));
    return;
  }
  for (const cells of rows) {
    body.append(el("tr", {}, ...cells.map(([text, cls]) => el("td", cls ? { class: cls } : {}, text))));
  }
}

function state(item) {
  if (item.blocked) return ["blocked", "bad"];
  if (item.expires && item.expires * 1000 < Date.now()) return ["expired", "bad"];
  return ["active", "ok"];
}

async function showKeys() {
  const [keys, teams] = await Promise.all([api("/key/list"), api("/team/list")]);
  fillTable("keys-table", keys.keys.map((k) => [
    [k.key_alias || "–"], [k.token], [k.team_id || "–"], [k.models.length ? k.models.join(", ") : "all"],
    [usd(k.spend), "num"], [k.max_budget == null ? "none" : usd(k.max_budget), "num"], [count(k.rpm_limit), "num"],
    [count(k.tpm_limit), "num"], [count(k.max_parallel_requests), "num"], state(k),
  ]));
  fillTable("teams-table", teams.map((t) => [
    [t.team_alias || "–"], [t.team_id], [usd(t.spend), "num"], [t.max_budget == null ? "none" : usd(t.max_budget), "num"],
    [count(t.rpm_limit), "num"], [count(t.tpm_limit), "num"], state(t),
  ]));
}

// A line chart of one measure per group over time buckets, drawn as SVG.
function lineChart(figure, series, measure, format) {
  figure.replaceChildren();
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p.t)))].sort();
  if (!times.length) {
    figure.append(el("div", { class: "empty" }, "No traffic in this period."));
    return;
  }
  const width = 900, height = 260, left = 70, right = 16, top = 12, bottom = 36;
  const values = series.flatMap((s) => s.points.map((p) => p[measure]));
  const highest = Math.max(...values, 0) || 1;
  const x = (i) => left + (times.length === 1 ? (width - left - right) / 2 : (i * (width - left - right)) / (times.length - 1));
  const y = (v) => top + (height - top - bottom) * (1 - v / highest);
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": measure, "data-points": values.length });
  for (const fraction of [0, 0.5, 1]) {
    const value = highest * fraction;
    svg.append(el("svg:line", { x1: left, x2: width - right, y1: y(value), y2: y(value), stroke: "#e3e6ec" }));
    svg.append(el("svg:text", { x: left - 6, y: y(value) + 4, "text-anchor": "end", "font-size": 11, fill: "#667085" }, format(value)));
  }
  const labelEvery = Math.max(1, Math.ceil(times.length / 8));
  times.forEach((t, i) => {
    if (i % labelEvery === 0) {
      const label = new Date(t).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
      svg.append(el("svg:text", { x: x(i), y: height - 12, "text-anchor": "middle", "font-size": 11, fill: "#667085" }, label));
    }
  });
  const legend = el("div", { class: "legend" });
  series.forEach((s, n) => {
    const color = COLORS[n % COLORS.length];
    const byTime = new Map(s.points.map((p) => [p.t, p[measure]]));
    const coords = times.map((t, i) => `${x(i)},${y(byTime.get(t) || 0)}`).join(" ");
    svg.append(el("svg:polyline", { points: coords, fill: "none", stroke: color, "stroke-width": 2, "data-group": s.group }));
    times.forEach((t, i) => {
      if (byTime.has(t)) svg.append(el("svg:circle", { cx: x(i), cy: y(byTime.get(t)), r: 3, fill: color, "data-group": s.group }));
    });
    const swatch = el("svg:svg", { width: 10, height: 10 }, el("svg:rect", { width: 10, height: 10, fill: color }));
    legend.append(el("span", {}, swatch, ` ${s.group}`));
  });
  figure.append(svg, legend);
}

function barChart(figure, models) {
  figure.replaceChildren();
  if (!models.length) {
    figure.append(el("div", { class: "empty" }, "No traffic in this period."));
    return;
  }
  const width = 900, rowHeight = 26, left = 220, height = models.length * rowHeight * 2 + 20;
  const highest = Math.max(...models.map((m) => m.p99_ms || 0), 1);
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "latency", "data-points": models.length });
  models.forEach((m, i) => {
    const base = 10 + i * rowHeight * 2;
    svg.append(el("svg:text", { x: left - 8, y: base + 16, "text-anchor": "end", "font-size": 12, fill: "#1d2330" }, m.model));
    [["p50", m.p50_ms, COLORS[1]], ["p99", m.p99_ms, COLORS[0]]].forEach(([name, value, color], j) => {
      const w = ((value || 0) / highest) * (width - left - 80);
      svg.append(el("svg:rect", { x: left, y: base + j * rowHeight, width: Math.max(w, 1), height: rowHeight - 6, fill: color,
                                  "data-model": m.model, "data-measure": name }));
      svg.append(el("svg:text", { x: left + w + 6, y: base + j * rowHeight + 14, "font-size": 11, fill: "#667085" }, `${name} ${ms(value)}`));
    });
  });
  figure.append(svg);
}

async function showUsage() {
  const groupBy = document.getElementById("group-by").value;
  const [seconds, bucket] = document.getElementById("period").value.split("|");
  const start = new Date(Date.now() - Number(seconds) * 1000).toISOString();
  const report = await api(`/spend/report?group_by=${groupBy}&bucket=${bucket}&start_date=${encodeURIComponent(start)}`);
  lineChart(document.getElementById("spend-chart"), report.series, "spend", (v) => `$${v.toFixed(v >= 1 ? 2 : 4)}`);
  lineChart(document.getElementById("requests-chart"), report.series, "requests", (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)));
}

async function showModels() {
  const report = await api("/spend/report?group_by=model&bucket=hour");
  fillTable("models-table", report.models.map((m) => [
    [m.model], [count(m.requests), "num"], [`${(m.error_rate * 100).toFixed(1)}%`, m.errors ? "num bad" : "num"],
    [ms(m.p50_ms), "num"], [ms(m.p95_ms), "num"], [ms(m.p99_ms), "num"], [usd(m.spend), "num"],
  ]));
  barChart(document.getElementById("latency-chart"), report.models);
}

async function showRequests() {
  const logs = await api("/spend/logs?limit=50");
  fillTable("requests-table", logs.map((r) => [
    [new Date(r.startTime).toLocaleString()], [r.request_id], [r.api_key || "–"], [r.model], [r.model_id],
    [r.status, r.status < 400 ? "ok" : "bad"], [`${r.prompt_tokens} / ${r.completion_tokens}`, "num"], [usd(r.spend), "num"],
    [ms(r.latency_ms), "num"],
  ]));
}

const PAGES = { keys: showKeys, usage: showUsage, models: showModels, requests: showRequests };
let current = "keys";

async function show(page) {
  current = page;
  for (const button of document.querySelectorAll("#tabs button")) button.classList.toggle("active", button.dataset.page === page);
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== `page-${page}`;
  document.body.dataset.page = page;
  document.body.dataset.loaded = "";
  try {
    await PAGES[page]();
    document.body.dataset.loaded = page;
  } catch (err) {
    if (err.status === 401 || err.status === 403) return signOut("That key is not the master key.");
    document.body.dataset.loaded = `error:${page}`;
    document.getElementById(`page-${page}`).prepend(el("p", { class: "error" }, err.message));
  }
}

function signedIn() {
  document.getElementById("login").hidden = true;
  document.getElementById("tabs").hidden = false;
  document.getElementById("logout").hidden = false;
  show(current);
}

function signOut(message = "") {
  masterKey = "";
  sessionStorage.removeItem("ocilm-master-key");
  document.getElementById("login").hidden = false;
  document.getElementById("tabs").hidden = true;
  document.getElementById("logout").hidden = true;
  for (const section of document.querySelectorAll(".page")) section.hidden = true;
  document.getElementById("login-error").textContent = message;
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    masterKey = document.getElementById("master-key").value.trim();
    try {
      await api("/key/list");
      sessionStorage.setItem("ocilm-master-key", masterKey);
      document.getElementById("master-key").value = "";
      signedIn();
    } catch (err) {
      signOut(err.status === 401 || err.status === 403 ? "That key is not the master key." : err.message);
    }
  });
  document.getElementById("logout").addEventListener("click", () => signOut());
  for (const button of document.querySelectorAll("#tabs button")) button.addEventListener("click", () => show(button.dataset.page));
  document.getElementById("group-by").addEventListener("change", () => show("usage"));
  document.getElementById("period").addEventListener("change", () => show("usage"));
  if (masterKey) signedIn();
});
