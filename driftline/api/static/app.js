// driftline's operator page: plain JavaScript over the HTTP API (/api/v1), uPlot for charts.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { stream: null, signals: [], alert: null, charts: [] };

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}
function controlBadges(snoozed, disabled) {
  // The controls in force, as the worker's latest snapshot recorded them.
  return [...Object.entries(snoozed).map(([sig, until]) =>
    `<span class="badge snoozed" data-snoozed="${esc(sig)}" title="until ${esc(when(until))}">snoozed ${esc(sig)}</span>`),
  ...disabled.map((sig) => `<span class="badge disabled" data-disabled="${esc(sig)}">disabled ${esc(sig)}</span>`)].join(" ");
}
function span(s) {
  // A setting's duration, exactly: "1 h", "90 min", "75 s".
  return s % 3600 === 0 ? `${s / 3600} h` : s % 60 === 0 ? `${s / 60} min` : `${s} s`;
}
function ago(unixS) {
  if (!unixS) return "—";
  const s = Math.max(0, Date.now() / 1000 - unixS);
  return s < 90 ? `${Math.round(s)} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem("driftline-token");
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { ...options, headers });
  if (res.status === 401) {
    $("#token-form").hidden = false;
    throw new Error("this API needs a token (DRIFTLINE_API__TOKEN)");
  }
  if (!res.ok) throw new Error(`${res.status}: ${(await res.text()).slice(0, 300)}`);
  return res;
}
const getJSON = async (path) => (await api(path)).json();

async function loadFleet() {
  const fleet = await getJSON("/api/v1/streams");
  const body = $("#fleet tbody");
  body.innerHTML = "";
  for (const s of fleet.streams) {
    const tr = document.createElement("tr");
    tr.dataset.stream = s.stream_id;
    if (s.stream_id === state.stream) tr.className = "selected";
    const last = s.last_alert;
    tr.innerHTML = `<td>${esc(s.stream_id)}${s.disabled ? " <span class=muted>(disabled)</span>" : ""}</td>
      <td><span class="status ${esc(s.status)}">${esc(s.status)}</span>${s.camera && s.camera !== "online" ? ` <span class="camera ${esc(s.camera)}">camera ${esc(s.camera)}</span>` : ""}</td>
      <td>${s.signals_in_drift.map(esc).join(", ") || "—"}</td>
      <td>${last ? `<span class="sev-${esc(last.severity)}">${esc(last.signal)}</span> <span class="lifecycle ${esc(last.lifecycle)}">${esc(last.lifecycle)}</span>` : "—"}
        ${s.open_alerts ? `<span class=muted>(${s.open_alerts} open)</span>` : ""}</td>
      <td class="controls-cell">${controlBadges(s.snoozed, s.disabled_signals) || "—"}</td>
      <td>${ago(s.last_update_ts)}</td>`;
    tr.onclick = () => { location.hash = `#/stream/${encodeURIComponent(s.stream_id)}`; };
    body.appendChild(tr);
  }
  $("#status-line").textContent = `${fleet.total} stream(s); refreshed ${new Date().toLocaleTimeString()}`;
}

const SCOPE_WORDS = {
  model: "the model version: look at it, not the cameras",
  fleet: "the fleet's cameras at once",
  streams: "these cameras",
};

async function loadDrift() {
  // Is it this camera, or the model? Signals in drift now, grouped (/api/v1/drift).
  const d = await getJSON("/api/v1/drift");
  const ul = $("#drift");
  ul.innerHTML = d.groups.length ? "" : "<li class=muted>no signal in drift</li>";
  for (const g of d.groups) {
    const li = document.createElement("li");
    li.dataset.signal = g.signal;
    li.dataset.scope = g.scope;
    if (g.model_version !== null) li.dataset.modelVersion = g.model_version;
    const of = g.camera ? "camera(s)" : `stream(s) of model ${esc(g.model_version)}`;
    const ids = g.stream_ids.map((sid) => `<a href="#/stream/${encodeURIComponent(sid)}">${esc(sid)}</a>`).join(", ");
    const more = g.in_drift > g.stream_ids.length ? ` and ${g.in_drift - g.stream_ids.length} more` : "";
    li.innerHTML = `<span class="scope ${esc(g.scope)}">${esc(g.scope)}</span> <b>${esc(g.signal)}</b>:
      ${g.in_drift} of ${g.streams_known} ${of} <span class=muted>(${esc(SCOPE_WORDS[g.scope] ?? g.scope)})</span>
      <br><span class=muted>${ids}${more}</span>`;
    ul.appendChild(li);
  }
  if (d.groups_total > d.groups.length) {
    ul.insertAdjacentHTML("beforeend", `<li class=muted>${d.groups_total - d.groups.length} group(s) more</li>`);
  }
  // Streams of a retired model version (or a camera gone) are left out: say so, never silently.
  for (const s of d.stale) {
    const was = `${s.in_drift ? `, ${s.in_drift} of them in drift then` : ""}; last update ${ago(s.last_updated_ts)}`;
    ul.insertAdjacentHTML("beforeend", `<li class="muted stale" data-stale-version="${esc(s.model_version)}">(${s.streams} stream(s) of ${esc(s.model_version)} not updated for over ${span(d.stale_after_s)} left out${was})</li>`);
  }
  const listed = d.stale.reduce((n, s) => n + s.streams, 0);
  if (d.stale_total > listed) {
    ul.insertAdjacentHTML("beforeend", `<li class="muted stale">(${d.stale_total - listed} more stale stream(s) left out)</li>`);
  }
}

async function loadTimeline() {
  const q = state.stream ? `?stream_id=${encodeURIComponent(state.stream)}&limit=30` : "?limit=30";
  const tl = await getJSON(`/api/v1/alerts${q}`);
  const ol = $("#timeline");
  ol.innerHTML = tl.alerts.length ? "" : "<li class=muted>no alerts</li>";
  for (const a of tl.alerts) {
    const li = document.createElement("li");
    li.className = "alert-item";
    li.dataset.alert = a.alert_id;
    li.innerHTML = `<span class="sev-${esc(a.severity)}">${esc(a.severity)}</span>
      ${esc(new Date(a.ts).toLocaleString())} <b>${esc(a.stream_id)}</b> ${esc(a.signal)}
      <span class="lifecycle ${esc(a.lifecycle)}">${esc(a.lifecycle)}</span>${a.notify ? "" : " <span class=muted>(snoozed: not notified)</span>"}
      <br><span class=muted>${esc(a.message)}</span>`;
    li.onclick = () => { location.hash = `#/stream/${encodeURIComponent(a.stream_id)}/alert/${encodeURIComponent(a.alert_id)}`; };
    ol.appendChild(li);
  }
}

function changeLines(marks) {
  // uPlot plugin: a vertical red line per alert (solid: detected, dotted: change began).
  return {
    hooks: {
      draw: (u) => {
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#d00";
        ctx.lineWidth = 2;
        for (const m of marks) {
          for (const [x, dash] of [[m.change_index, [3, 3]], [m.detected_index, []]]) {
            const px = u.valToPos(x, "x", true);
            if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) continue;
            ctx.setLineDash(dash);
            ctx.beginPath();
            ctx.moveTo(px, u.bbox.top);
            ctx.lineTo(px, u.bbox.top + u.bbox.height);
            ctx.stroke();
          }
        }
        ctx.restore();
      },
    },
  };
}

function drawChart(sig, container) {
  const pts = sig.series;
  const x = pts.map((p) => p.index);
  const lo = pts.map((p) => (p.baseline != null && p.tolerance != null ? p.baseline - p.tolerance : null));
  const hi = pts.map((p) => (p.baseline != null && p.tolerance != null ? p.baseline + p.tolerance : null));
  const data = [x, pts.map((p) => p.observed), pts.map((p) => p.baseline ?? p.expected), hi, lo,
    pts.map((p) => p.statistic), pts.map((p) => p.threshold)];
  const opts = {
    width: Math.max(420, container.clientWidth - 10), height: 200,
    plugins: [changeLines(sig.change_points)],
    scales: { x: { time: false } },
    series: [
      { label: "event" },
      { label: "value", stroke: "#1f6feb", width: 1.5, scale: "v" },
      { label: "baseline", stroke: "#888", width: 1, scale: "v" },
      { label: "band +", stroke: "rgba(31,111,235,0.25)", scale: "v" },
      { label: "band −", stroke: "rgba(31,111,235,0.25)", scale: "v" },
      { label: "statistic", stroke: "#e8590c", width: 1, scale: "s" },
      { label: "threshold", stroke: "#d00", dash: [6, 4], width: 1, scale: "s" },
    ],
    bands: [{ series: [3, 4], fill: "rgba(31,111,235,0.10)" }],
    axes: [{}, { scale: "v" }, { scale: "s", side: 1, grid: { show: false } }],
  };
  return new uPlot(opts, data, container);
}

async function loadStream(streamId, alertId) {
  state.stream = streamId;
  $("#stream-panel").hidden = false;
  $("#stream-title").textContent = `Stream ${streamId}`;
  const st = await getJSON(`/api/v1/streams/${encodeURIComponent(streamId)}`);
  state.signals = st.signals;
  const flags = [st.disabled ? "disabled" : "", st.snooze_until ? `snoozed until ${new Date(st.snooze_until * 1000).toLocaleString()}` : "",
    st.open_alerts ? `${st.open_alerts} open alert(s)` : ""].filter(Boolean);
  $("#stream-title").textContent = `Stream ${streamId}${flags.length ? ` (${flags.join(", ")})` : ""}`;
  $("#stream-controls").innerHTML = controlBadges(st.snoozed, st.disabled_signals);
  $("#control-history").innerHTML = st.controls.slice().reverse().map((c) =>
    `<li data-command="${esc(c.command_id)}">${esc(when(c.ts))} <b>${esc(c.action)}</b>
     ${esc((c.signals || ["all signals"]).join(", "))} by ${esc(c.by || "?")}${c.reason ? ` — ${esc(c.reason)}` : ""}</li>`).join("")
    || "<li class=muted>no controls yet</li>";
  const select = $("#control-signal");
  const chosen = select.value;
  select.innerHTML = '<option value="">all signals</option>' +
    [...new Set(st.signals.map((s) => s.signal))].map((n) => `<option>${esc(n)}</option>`).join("");
  select.value = chosen;
  for (const c of state.charts) c.destroy();
  state.charts = [];
  const charts = $("#charts");
  charts.innerHTML = "";
  const order = { drift: 0, ok: 1, warming_up: 2 };
  const drawn = st.signals.filter((s) => s.series.length > 0)
    .sort((a, b) => (order[a.status] ?? 3) - (order[b.status] ?? 3) || a.signal.localeCompare(b.signal));
  for (const sig of drawn) {
    const div = document.createElement("div");
    div.className = `chart ${sig.status}`;
    div.dataset.signal = sig.signal;
    div.innerHTML = `<h3>${esc(sig.signal)} <span class="status ${esc(sig.status)}">${esc(sig.status)}</span>
      ${sig.snoozed_until ? `<span class="badge snoozed">snoozed until ${esc(when(sig.snoozed_until))}</span>` : ""}
      ${sig.disabled ? '<span class="badge disabled">disabled</span>' : ""}
      <span class=muted>${esc(sig.detector)} · ${esc(sig.model_version)}</span></h3>`;
    charts.appendChild(div);
    state.charts.push(drawChart(sig, div));
  }
  if (!drawn.length) charts.innerHTML = "<p class=muted>no series yet (the sinks add a point per state snapshot)</p>";
  await loadTimeline();
  if (alertId) await showAlert(alertId);
  else $("#alert-detail").hidden = true;
  await loadFleet();
  await loadDrift();
}

function frameList(title, frames) {
  if (!frames.length) return `<p class=muted>${title}: none</p>`;
  return `<p>${title}:</p><div class="frames">` + frames.map((f) =>
    `<figure>${f.url ? `<img data-src="${esc(f.url)}" alt="${esc(f.frame_id)}">` : ""}
     <figcaption>${esc(f.frame_id)}${f.url ? "" : " (not stored)"}</figcaption></figure>`).join("") + "</div>";
}

async function showAlert(alertId) {
  const d = await getJSON(`/api/v1/alerts/${encodeURIComponent(alertId)}`);
  state.alert = d.alert;
  const a = d.alert;
  const box = $("#alert-detail");
  box.hidden = false;
  const by = d.lifecycle_by ? ` by ${esc(d.lifecycle_by)}` : "";
  box.innerHTML = `<h3 class="sev-${esc(a.severity)}">${esc(a.severity)} alert · ${esc(a.signal)} ·
    <span class="lifecycle ${esc(d.lifecycle)}">${esc(d.lifecycle)}</span>${by}${d.lifecycle_reason ? ` (${esc(d.lifecycle_reason)})` : ""}</h3>
    <p>${esc(a.message)}</p>
    <p class=muted>id ${esc(a.alert_id)} · expected ${esc(a.expected?.toPrecision(4))}, observed ${esc(a.observed?.toPrecision(4))}
      · change at event ${esc(a.change_index)}, detected at ${esc(a.detected_index)}</p>
    ${frameList("frames before the change", d.frames_before)}
    ${frameList("frames after", d.frames_after)}
    <p class=muted>${esc(d.frames_note)}</p>`;
  $("#control-signal").value = a.signal;
  for (const img of box.querySelectorAll("img[data-src]")) {
    // Fetched with the token header (an <img src> cannot carry it).
    api(img.dataset.src).then((r) => r.blob()).then((b) => { img.src = URL.createObjectURL(b); })
      .catch((e) => { img.alt = `not available: ${e.message}`; });
  }
}

async function sendControl(action) {
  const signal = $("#control-signal").value;
  const body = { by: "web page" };
  if (signal) body.signals = [signal];
  if (action === "snooze") body.for_s = 3600;
  if (action === "set_budget") body.false_alarms_per_week = Number($("#budget").value);
  if (action === "ack" && state.alert && state.alert.stream_id === state.stream && (!signal || signal === state.alert.signal)) {
    body.alert_id = state.alert.alert_id;
    body.signals = [state.alert.signal];
  }
  const out = $("#control-result");
  try {
    const res = await api(`/api/v1/streams/${encodeURIComponent(state.stream)}/${action.replace("_", "-")}`,
      { method: "POST", body: JSON.stringify(body) });
    const acc = await res.json();
    out.textContent = `${action} sent: command ${acc.command_id} on ${acc.topic}${acc.signed ? " (signed)" : ""}`;
    out.dataset.commandId = acc.command_id;
  } catch (e) {
    out.textContent = `${action} failed: ${e.message}`;
  }
}

async function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "stream" && parts[1]) await loadStream(parts[1], parts[2] === "alert" ? parts[3] : null);
    else {
      state.stream = null;
      $("#stream-panel").hidden = true;
      await loadFleet();
      await loadDrift();
      await loadTimeline();
    }
  } catch (e) {
    $("#status-line").textContent = `error: ${e.message}`;
  }
}

for (const b of document.querySelectorAll("#controls button[data-action]")) {
  b.onclick = () => sendControl(b.dataset.action);
}
$("#token-form").onsubmit = (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("driftline-token", $("#token").value);
  $("#token-form").hidden = true;
  route();
};
window.addEventListener("hashchange", route);
route();
setInterval(() => {
  if (!document.hidden) loadFleet().then(loadDrift).catch(() => {});
}, 10000);
