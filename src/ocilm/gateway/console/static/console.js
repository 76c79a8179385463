// The ocilm usage console: reads the admin API with the master key typed in (kept in this tab's
// sessionStorage only) and draws its tables and charts. No framework, nothing from a CDN.
"use strict";

const COLORS = ["#c74634", "#2e6fdb", "#2f9e6b", "#a15ce0", "#e09b2d", "#1f9bb0", "#7a7f8c", "#d6457a"];
const SVG = "http://www.w3.org/2000/svg";
let masterKey = sessionStorage.getItem("ocilm-master-key") || "";
let session = { sso: false, signed_in: false }; // a signed-in identity-provider session (ui_sso), kept in an HttpOnly cookie

// Every read and every change goes through the admin API, the same one scripts and the CLI use.
async function call(path, body) {
  const headers = {};
  if (masterKey) headers.authorization = `Bearer ${masterKey}`;
  else if (session.signed_in && body !== undefined) headers["x-csrf-token"] = session.csrf; // a change made with the session cookie
  const init = { headers, credentials: "same-origin" };
  if (body !== undefined) Object.assign(init, { method: "POST", body: JSON.stringify(body), headers: { ...headers, "content-type": "application/json" } });
  const response = await fetch(path, init);
  const parsed = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (parsed.error && parsed.error.message) || `HTTP ${response.status}`;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return { body: parsed, headers: response.headers };
}

async function api(path, body) {
  return (await call(path, body)).body;
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

let teamsSeen = [];

function actions(...buttons) {
  const cell = el("span", {});
  for (const [label, handler, cls] of buttons) {
    const button = el("button", { type: "button", ...(cls ? { class: cls } : {}) }, label);
    button.addEventListener("click", async () => {
      try {
        await handler();
      } catch (err) {
        notice(`Not done: ${err.message}`);
      }
    });
    cell.append(button);
  }
  return cell;
}

async function showKeys() {
  const [keys, teams] = await Promise.all([api("/key/list"), api("/team/list")]);
  teamsSeen = teams;
  fillTable("keys-table", keys.keys.map((k) => [
    [k.key_alias || "–"], [k.token], [k.team_id || "–"], [k.models.length ? k.models.join(", ") : "all"],
    [usd(k.spend), "num"], [k.max_budget == null ? "none" : usd(k.max_budget), "num"], [count(k.rpm_limit), "num"],
    [count(k.tpm_limit), "num"], [count(k.max_parallel_requests), "num"], state(k),
    [actions(
      ["Edit", () => editKey(k)],
      k.blocked ? ["Unblock", () => change(`/key/unblock`, { key: k.token }, `Key ${k.token} unblocked.`)]
                : ["Block", () => confirmThen(`Block key ${k.key_alias || k.token}? Its requests are refused until it is unblocked.`,
                                              () => change(`/key/block`, { key: k.token }, `Key ${k.token} blocked.`)), "danger"],
      ["Regenerate", () => confirmThen(`Regenerate key ${k.key_alias || k.token}? The old secret stops working now.`, async () => {
        const made = await api("/key/regenerate", { key: k.token });
        showSecret(made.key);
        await show("keys");
      })],
      ["Delete", () => confirmThen(`Delete key ${k.key_alias || k.token}? This cannot be undone.`,
                                   () => change("/key/delete", { keys: [k.token] }, `Key ${k.token} deleted.`)), "danger"],
    )],
  ]));
  fillTable("teams-table", teams.map((t) => [
    [t.team_alias || "–"], [t.team_id], [usd(t.spend), "num"], [t.max_budget == null ? "none" : usd(t.max_budget), "num"],
    [count(t.rpm_limit), "num"], [count(t.tpm_limit), "num"], state(t), [actions(["Edit", () => editTeam(t)])],
  ]));
}

// ---------------------------------------------------------------- changing things

const LIST = (v) => (v || "").split(",").map((s) => s.trim()).filter(Boolean);
const KEY_FIELDS = [
  ["key_alias", "Alias", "text"], ["team_id", "Team", "team"], ["models", "Models (comma-separated; empty: all)", "list"],
  ["max_budget", "Budget (USD)", "number"], ["budget_duration", "Budget period (e.g. 30d)", "text"],
  ["rpm_limit", "Requests per minute", "count"], ["tpm_limit", "Tokens per minute", "count"],
  ["max_parallel_requests", "Requests in flight", "count"], ["guardrails", "Guardrails (comma-separated)", "list"],
  ["mcp_servers", "MCP servers (comma-separated)", "mcp"],
];
const TEAM_FIELDS = KEY_FIELDS.filter(([name]) => !["key_alias", "team_id"].includes(name)).concat([]);
TEAM_FIELDS.unshift(["team_alias", "Alias", "text"]);

function valueOf(item, [name, , kind]) {
  if (kind === "mcp") return ((item.object_permission || {}).mcp_servers || []).join(", ");
  const value = item[name];
  if (value == null) return "";
  return Array.isArray(value) ? value.join(", ") : String(value);
}

function openForm(title, fields, item, submit) {
  const dialog = document.getElementById("edit-dialog");
  document.getElementById("edit-title").textContent = title;
  document.getElementById("edit-error").textContent = "";
  const box = document.getElementById("edit-fields");
  box.replaceChildren();
  for (const field of fields) {
    const [name, label, kind] = field;
    let input;
    if (kind === "team") {
      input = el("select", { name, id: `field-${name}` }, el("option", { value: "" }, "no team"));
      for (const t of teamsSeen) input.append(el("option", { value: t.team_id }, t.team_alias ? `${t.team_alias} (${t.team_id})` : t.team_id));
      input.value = item.team_id || "";
    } else {
      input = el("input", { name, id: `field-${name}`, type: kind === "number" || kind === "count" ? "number" : "text",
                            ...(kind === "number" ? { step: "any", min: "0" } : {}), ...(kind === "count" ? { step: "1", min: "1" } : {}) });
      input.value = valueOf(item, field);
    }
    box.append(el("label", { for: `field-${name}` }, label, input));
  }
  const form = document.getElementById("edit-form");
  form.onsubmit = async (event) => {
    event.preventDefault();
    const body = {};
    for (const field of fields) {
      const [name, , kind] = field;
      const raw = document.getElementById(`field-${name}`).value.trim();
      if (raw === valueOf(item, field)) continue; // unchanged: not sent
      if (kind === "list") body[name] = LIST(raw);
      else if (kind === "mcp") body.object_permission = { ...(item.object_permission || {}), mcp_servers: LIST(raw) };
      else if (kind === "number") body[name] = raw === "" ? null : Number(raw);
      else if (kind === "count") body[name] = raw === "" ? null : Number(raw);
      else body[name] = raw === "" ? null : raw;
    }
    try {
      await submit(body);
      dialog.close();
    } catch (err) {
      document.getElementById("edit-error").textContent = err.message;
    }
  };
  document.getElementById("edit-cancel").onclick = () => dialog.close();
  dialog.showModal();
  box.querySelector("input, select").focus();
}

function notice(text) {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.hidden = !text;
}

async function change(path, body, done) {
  await api(path, body);
  notice(done);
  await show("keys");
}

function confirmThen(question, action) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-text").textContent = question;
  document.getElementById("confirm-error").textContent = "";
  document.getElementById("confirm-yes").onclick = async () => {
    try {
      await action();
      dialog.close();
    } catch (err) {
      document.getElementById("confirm-error").textContent = err.message;
    }
  };
  document.getElementById("confirm-no").onclick = () => dialog.close();
  dialog.showModal();
  document.getElementById("confirm-no").focus(); // the safe choice has the focus
}

function showSecret(key) {
  const dialog = document.getElementById("secret-dialog");
  document.getElementById("secret-value").textContent = key;
  document.getElementById("secret-copy").onclick = () => navigator.clipboard && navigator.clipboard.writeText(key);
  dialog.addEventListener("close", () => { document.getElementById("secret-value").textContent = ""; }, { once: true });
  dialog.showModal();
}

function editKey(k) {
  openForm(`Edit key ${k.key_alias || k.token}`, KEY_FIELDS, k, async (body) => {
    if (Object.keys(body).length) await api("/key/update", { key: k.token, ...body });
    notice(`Key ${k.token} saved.`);
    await show("keys");
  });
}

function editTeam(t) {
  openForm(`Edit team ${t.team_alias || t.team_id}`, TEAM_FIELDS, t, async (body) => {
    if (Object.keys(body).length) await api("/team/update", { team_id: t.team_id, ...body });
    notice(`Team ${t.team_id} saved.`);
    await show("keys");
  });
}

function newKey() {
  openForm("New key", KEY_FIELDS.concat([["duration", "Expires after (e.g. 90d; empty: never)", "text"]]), {}, async (body) => {
    const made = await api("/key/generate", body);
    notice(`Key ${made.token} created.`);
    showSecret(made.key);
    await show("keys");
  });
}

function newTeam() {
  openForm("New team", TEAM_FIELDS, {}, async (body) => {
    const made = await api("/team/new", body);
    notice(`Team ${made.team_id} created.`);
    await show("keys");
  });
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

// The search runs in the database (GET /spend/logs filters and pages there), never over a loaded page.
let searchRows = [];
let searchCursor = null;

function searchQuery(cursor) {
  const params = new URLSearchParams({ limit: "50" });
  for (const input of document.querySelectorAll("#search-form input")) {
    const value = input.value.trim();
    if (!value) continue;
    params.set(input.name, input.type === "datetime-local" ? new Date(value).toISOString() : value);
  }
  if (cursor) params.set("cursor", cursor);
  return `/spend/logs?${params}`;
}

function drawRequests() {
  fillTable("requests-table", searchRows.map((r) => [
    [new Date(r.startTime).toLocaleString()], [r.request_id], [r.api_key || "–"], [r.model], [r.model_id],
    [r.status, r.status < 400 ? "ok" : "bad"], [`${r.prompt_tokens} / ${r.completion_tokens}`, "num"], [usd(r.spend), "num"],
    [ms(r.latency_ms), "num"],
  ]));
  document.getElementById("search-more").hidden = !searchCursor;
}

async function showRequests(more = false) {
  document.getElementById("search-error").textContent = "";
  const page = await call(searchQuery(more ? searchCursor : null));
  searchRows = more ? searchRows.concat(page.body) : page.body;
  searchCursor = page.headers.get("x-next-cursor");
  drawRequests();
}

async function showAudit() {
  const entries = await api("/audit/logs?limit=1000");
  const changed = (e) => {
    if (!e.before || !e.after) return e.after ? "created" : "deleted";
    const keys = Object.keys(e.after).filter((k) => JSON.stringify(e.before[k]) !== JSON.stringify(e.after[k]) && !["spend", "budget_reset_at"].includes(k));
    return keys.map((k) => `${k}: ${JSON.stringify(e.before[k])} → ${JSON.stringify(e.after[k])}`).join("; ") || "no field changed";
  };
  fillTable("audit-table", entries.reverse().map((e) => [
    [String(e.seq), "num"], [new Date(e.at).toLocaleString()], [e.actor], [e.action], [e.target || "–"], [changed(e), "changed"],
  ]));
}

const PAGES = { keys: showKeys, usage: showUsage, models: showModels, requests: () => showRequests(false), audit: showAudit };
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
    if (masterKey && (err.status === 401 || err.status === 403)) return signOut("That key is not the master key.");
    if (!masterKey && err.status === 401) return signOut("Your session ended; sign in again.");
    if (page === "requests") {
      document.getElementById("search-error").textContent = err.message;
      document.body.dataset.loaded = `error:${page}`;
      return;
    }
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
  if (session.signed_in && !masterKey) {
    fetch("/ui/sso/logout", { method: "POST", headers: { "x-csrf-token": session.csrf }, credentials: "same-origin" });
    session = { ...session, signed_in: false };
  }
  document.getElementById("who").textContent = "";
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
  document.getElementById("new-key").addEventListener("click", newKey);
  document.getElementById("new-team").addEventListener("click", newTeam);
  document.getElementById("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    show("requests");
  });
  document.getElementById("search-more").addEventListener("click", () => showRequests(true).catch((err) => {
    document.getElementById("search-error").textContent = err.message;
  }));
  const ssoError = new URLSearchParams(location.search).get("sso_error");
  fetch("/ui/session", { credentials: "same-origin" }).then((r) => r.json()).catch(() => ({ sso: false })).then((found) => {
    session = found;
    document.getElementById("sso").hidden = !session.sso;
    if (ssoError) signOut(`The identity provider's sign-in failed (${ssoError}).`);
    else if (masterKey) signedIn();
    else if (session.signed_in) {
      document.getElementById("who").textContent = `${session.user}${session.admin ? " (administrator)" : ""}`;
      signedIn();
    }
  });
});
