// The Switchboard console: plain JavaScript over the admin API, no build step.
// Credentials live in sessionStorage and go in an Authorization header on every
// request (no cookie, so no request can be forged from another site).
"use strict";

const $ = (sel) => document.querySelector(sel);
const POLL_MS = 2000;
const HISTORY = 150;
let auth = sessionStorage.getItem("auth");
let timer = null;
let selectedQueue = null;
const newRates = () => ({ publish: [], deliver: [], ack: [] });
const history = { total: [], queue: [], rates: newRates(), queueRates: newRates() };

function enc(s) { return encodeURIComponent(s); }

async function api(method, path, body) {
  // X-Requested-With: a 401 then comes without a basic-auth challenge, so the
  // browser shows no login dialog of its own over the console's form.
  const init = { method, headers: { Authorization: "Basic " + auth, "X-Requested-With": "console" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const r = await fetch("/api" + path, init);
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (r.status === 401) { logout(); throw new Error("not authorized"); }
  if (!r.ok) throw new Error((data && data.reason) || r.statusText);
  return data;
}

function showError(e) { $("#error").textContent = e ? String(e.message || e) : ""; }

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function button(tr, label, onClick, cls) {
  const td = document.createElement("td");
  const b = document.createElement("button");
  b.textContent = label;
  b.className = cls || "link";
  b.addEventListener("click", onClick);
  td.appendChild(b);
  tr.appendChild(td);
  return b;
}

function fill(tbody, rows, render) {
  tbody.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement("tr");
    render(tr, row);
    tbody.appendChild(tr);
  }
}

const COLORS = ["#2d6cdf", "#1f9d55", "#d97706", "#b91c1c"];

// Line chart of one or more series: [[label, points], ...], newest point last.
function chart(canvas, series) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 30;
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...series.flatMap(([, p]) => p));
  ctx.strokeStyle = "#d9dde5";
  ctx.beginPath(); ctx.moveTo(pad, h - pad); ctx.lineTo(w - 5, h - pad); ctx.stroke();
  ctx.font = "12px system-ui";
  ctx.fillStyle = "#6b7385";
  ctx.fillText(String(Math.round(max * 10) / 10), 2, 12);
  let legend = pad + 4;
  series.forEach(([label, points], k) => {
    const color = COLORS[k % COLORS.length];
    ctx.fillStyle = color;
    const last = points.length ? points[points.length - 1] : 0;
    const text = label + " " + (Math.round(last * 10) / 10);
    ctx.fillText(text, legend, 12);
    legend += ctx.measureText(text).width + 16;
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    const at = (i, v) => [pad + (i * (w - pad - 5)) / Math.max(1, HISTORY - 1),
      h - pad - (v / max) * (h - pad - 18)];
    points.forEach((v, i) => {
      const [x, y] = at(i, v);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    if (points.length) {
      const [x, y] = at(points.length - 1, last);
      ctx.beginPath(); ctx.arc(x, y, 3, 0, 2 * Math.PI); ctx.fill();
    }
  });
}

// The rates of a `message_stats` (0 until the API has two samples).
function rates(ms) {
  const r = (k) => (ms && ms[k + "_details"] ? ms[k + "_details"].rate : 0);
  return { publish: r("publish"), deliver: r("deliver_get"), ack: r("ack"), redeliver: r("redeliver") };
}

function rememberRates(h, ms) {
  const r = rates(ms);
  for (const k of ["publish", "deliver", "ack"]) remember(h[k], r[k]);
}

function rateSeries(h) {
  return [["publish/s", h.publish], ["deliver/s", h.deliver], ["ack/s", h.ack]];
}

function remember(list, v) {
  list.push(v);
  if (list.length > HISTORY) list.shift();
}

const pages = {
  async overview() {
    const [ov, nodes, conns] = await Promise.all([
      api("GET", "/overview"), api("GET", "/nodes"), api("GET", "/connections"),
    ]);
    const t = ov.object_totals, q = ov.queue_totals, r = rates(ov.message_stats);
    const cards = [
      ["publish/s", r.publish], ["deliver/s", r.deliver], ["ack/s", r.ack],
      ["messages", q.messages], ["ready", q.messages_ready],
      ["unacknowledged", q.messages_unacknowledged], ["queues", t.queues],
      ["connections", t.connections], ["consumers", t.consumers],
      ["alarm", ov.alarm || "none"],
    ];
    $("#totals").replaceChildren(...cards.map(([k, v]) => {
      const d = document.createElement("div");
      d.className = "card";
      d.id = "total-" + k.replace("/s", "-rate");
      const b = document.createElement("b"); b.textContent = v;
      const s = document.createElement("span"); s.textContent = k;
      d.append(b, s);
      return d;
    }));
    remember(history.total, q.messages);
    chart($("#depth-chart"), [["messages in all queues", history.total]]);
    rememberRates(history.rates, ov.message_stats);
    chart($("#rates-chart"), rateSeries(history.rates));
    const by = {};
    for (const c of conns) by[c.protocol] = (by[c.protocol] || 0) + 1;
    fill($("#protocols tbody"), Object.entries(by).sort(), (tr, [p, n]) => {
      cell(tr, p); cell(tr, n, "num");
    });
    const n = nodes[0] || {};
    const rows = [["node", n.name], ["uptime", Math.round((n.uptime || 0) / 1000) + " s"],
      ["memory", Math.round((n.mem_used || 0) / 1048576) + " MiB"], ["version", ov.product_version]];
    const rep = ov.replication;
    if (rep) {
      rows.push(["replication", rep.role + ", epoch " + rep.epoch + ", peer " + rep.peer]);
      rows.push(["standby", rep.standby_in_sync ? "in sync" : "NOT in sync (lag " + rep.lag_lsn + ")"]);
    } else {
      rows.push(["replication", "single node"]);
    }
    fill($("#node tbody"), rows, (tr, [k, v]) => { cell(tr, k); cell(tr, v); });
  },

  async connections() {
    const conns = await api("GET", "/connections");
    fill($("#connections-table tbody"), conns, (tr, c) => {
      tr.dataset.name = c.name;
      cell(tr, c.name); cell(tr, c.protocol); cell(tr, c.user); cell(tr, c.vhost);
      cell(tr, c.channels, "num");
      const props = c.client_properties || {};
      cell(tr, props.connection_name || props.product || props.client_id || props.host || "");
      button(tr, "Close", async () => {
        if (!confirm("Close connection " + c.name + "?")) return;
        await api("DELETE", "/connections/" + enc(c.name));
        refresh();
      }, "danger close-connection");
    });
  },

  async queues() {
    const qs = await api("GET", "/queues");
    fill($("#queues-table tbody"), qs, (tr, q) => {
      tr.dataset.name = q.name;
      cell(tr, q.vhost); cell(tr, q.name); cell(tr, q.type);
      cell(tr, q.messages_ready, "num ready"); cell(tr, q.messages_unacknowledged, "num");
      cell(tr, q.consumers, "num");
      const r = rates(q.message_stats);
      cell(tr, r.publish, "num"); cell(tr, r.deliver, "num"); cell(tr, r.ack, "num");
      button(tr, "Open", () => {
        selectedQueue = q; history.queue = []; history.queueRates = newRates(); refresh();
      });
    });
    if (selectedQueue) {
      const q = qs.find((x) => x.vhost === selectedQueue.vhost && x.name === selectedQueue.name);
      $("#queue-detail").hidden = !q;
      if (!q) { selectedQueue = null; return; }
      $("#qd-name").textContent = q.name;
      remember(history.queue, q.messages);
      chart($("#queue-chart"), [["messages in " + q.name, history.queue]]);
      rememberRates(history.queueRates, q.message_stats);
      chart($("#queue-rates-chart"), rateSeries(history.queueRates));
      const b = await api("GET", "/queues/" + enc(q.vhost) + "/" + enc(q.name) + "/bindings");
      fill($("#qd-bindings tbody"), b, (tr, x) => {
        cell(tr, x.source || "(default exchange)"); cell(tr, x.routing_key);
        cell(tr, JSON.stringify(x.arguments));
      });
    } else {
      $("#queue-detail").hidden = true;
    }
  },

  async exchanges() {
    const [xs, bs] = await Promise.all([api("GET", "/exchanges"), api("GET", "/bindings")]);
    fill($("#exchanges-table tbody"), xs, (tr, x) => {
      cell(tr, x.vhost); cell(tr, x.name || "(default)"); cell(tr, x.type);
      cell(tr, x.durable ? "yes" : "no");
      cell(tr, bs.filter((b) => b.source === x.name && b.vhost === x.vhost && x.name !== "").length, "num");
    });
  },

  async topics() {
    const [ts, ss, qs, ms, rs] = await Promise.all([
      api("GET", "/sns/topics"), api("GET", "/sns/subscriptions"), api("GET", "/sqs/queues"),
      api("GET", "/mqtt/sessions"), api("GET", "/mqtt/retained"),
    ]);
    fill($("#sns-topics tbody"), ts, (tr, t) => {
      tr.dataset.name = t.name;
      cell(tr, t.topic_arn); cell(tr, t.exchange);
      cell(tr, t.subscriptions_confirmed, "num"); cell(tr, t.subscriptions_pending, "num");
    });
    fill($("#sns-subscriptions tbody"), ss, (tr, s) => {
      cell(tr, s.topic_arn); cell(tr, s.protocol); cell(tr, s.endpoint);
      cell(tr, s.pending_confirmation ? "pending confirmation" : "confirmed");
    });
    fill($("#sqs-queues tbody"), qs, (tr, q) => {
      tr.dataset.name = q.name;
      const a = q.attributes || {};
      cell(tr, q.region); cell(tr, q.name);
      cell(tr, a.ApproximateNumberOfMessages, "num");
      cell(tr, a.ApproximateNumberOfMessagesNotVisible, "num");
      cell(tr, a.ApproximateNumberOfMessagesDelayed, "num");
      cell(tr, a.VisibilityTimeout, "num");
    });
    fill($("#mqtt-sessions tbody"), ms, (tr, m) => {
      tr.dataset.name = m.client_id;
      cell(tr, m.client_id);
      cell(tr, (m.subscriptions || []).map((s) => s.filter + " (QoS " + s.qos + ")").join(", "));
      cell(tr, m.messages, "num");
    });
    fill($("#mqtt-retained tbody"), rs, (tr, r) => {
      cell(tr, r.topic); cell(tr, r.payload_bytes, "num"); cell(tr, r.qos, "num");
    });
  },

  async users() {
    const [us, vs, ps] = await Promise.all([
      api("GET", "/users"), api("GET", "/vhosts"), api("GET", "/permissions"),
    ]);
    fill($("#permissions-table tbody"), ps, (tr, p) => {
      tr.dataset.name = p.user + "@" + p.vhost;
      cell(tr, p.user); cell(tr, p.vhost);
      cell(tr, p.configure); cell(tr, p.write); cell(tr, p.read);
      button(tr, "Clear", async () => {
        if (!confirm("Clear the permissions of " + p.user + " in " + p.vhost + "?")) return;
        await api("DELETE", "/permissions/" + enc(p.vhost) + "/" + enc(p.user));
        refresh();
      }, "danger");
    });
    fill($("#users-table tbody"), us, (tr, u) => {
      cell(tr, u.name); cell(tr, (u.tags || []).join(", "));
      button(tr, "Delete", async () => {
        if (!confirm("Delete user " + u.name + "?")) return;
        await api("DELETE", "/users/" + enc(u.name));
        refresh();
      }, "danger");
    });
    fill($("#vhosts-table tbody"), vs, (tr, v) => { cell(tr, v.name); cell(tr, v.messages, "num"); });
  },

  async definitions() {},
};

function current() { return (location.hash || "#overview").slice(1); }

async function refresh() {
  const page = current();
  for (const s of document.querySelectorAll("section.page")) s.hidden = s.id !== page;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
  try {
    await (pages[page] || pages.overview)();
    showError(null);
  } catch (e) {
    showError(e);
  }
}

function start() {
  $("#login").hidden = true;
  $("#nav").hidden = false;
  $("#logout").hidden = false;
  api("GET", "/whoami").then((w) => { $("#who").textContent = w.name + " (" + w.tags.join(", ") + ")"; })
    .catch(showError);
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, POLL_MS);
}

function logout() {
  auth = null;
  sessionStorage.removeItem("auth");
  clearInterval(timer);
  for (const s of document.querySelectorAll("section.page")) s.hidden = true;
  $("#nav").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  $("#login").hidden = false;
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  auth = btoa(unescape(encodeURIComponent($("#login-user").value + ":" + $("#login-password").value)));
  try {
    await api("GET", "/whoami");
    sessionStorage.setItem("auth", auth);
    $("#login-error").textContent = "";
    start();
  } catch (e) {
    $("#login-error").textContent = "Login failed";
    logout();
  }
});

$("#logout").addEventListener("click", logout);
window.addEventListener("hashchange", refresh);

$("#publish-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = {
    routing_key: $("#pub-key").value,
    payload: $("#pub-payload").value,
    payload_encoding: "string",
    properties: $("#pub-persistent").checked ? { delivery_mode: 2 } : {},
  };
  const x = $("#pub-exchange").value || "amq.default";
  try {
    const r = await api("POST", "/exchanges/" + enc($("#pub-vhost").value) + "/" + enc(x) + "/publish", body);
    $("#pub-result").textContent = r.routed ? "published, routed" : "published, not routed";
  } catch (e) {
    $("#pub-result").textContent = "refused: " + e.message;
  }
});

$("#get-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = selectedQueue;
  const r = await api("POST", "/queues/" + enc(q.vhost) + "/" + enc(q.name) + "/get", {
    count: Number($("#get-count").value), ackmode: $("#get-ackmode").value, encoding: "auto",
  });
  $("#get-result").textContent = r.length ? JSON.stringify(r, null, 2) : "(queue empty)";
  refresh();
});

$("#purge").addEventListener("click", async () => {
  const q = selectedQueue;
  if (!confirm("Purge " + q.name + "?")) return;
  await api("DELETE", "/queues/" + enc(q.vhost) + "/" + enc(q.name) + "/contents");
  refresh();
});

$("#delete-queue").addEventListener("click", async () => {
  const q = selectedQueue;
  if (!confirm("Delete " + q.name + "?")) return;
  await api("DELETE", "/queues/" + enc(q.vhost) + "/" + enc(q.name));
  selectedQueue = null;
  refresh();
});

$("#user-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await api("PUT", "/users/" + enc($("#user-name").value), {
      password: $("#user-password").value, tags: $("#user-tags").value,
    });
    refresh();
  } catch (e) { showError(e); }
});

$("#permission-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await api("PUT", "/permissions/" + enc($("#perm-vhost").value) + "/" + enc($("#perm-user").value), {
      configure: $("#perm-configure").value, write: $("#perm-write").value, read: $("#perm-read").value,
    });
    refresh();
  } catch (e) { showError(e); }
});

$("#download").addEventListener("click", async () => {
  const defs = await api("GET", "/definitions");
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([JSON.stringify(defs, null, 2)], { type: "application/json" }));
  a.download = "switchboard-definitions.json";
  a.click();
});

$("#upload-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = $("#upload-file").files[0];
  if (!f) return;
  try {
    const r = await api("POST", "/definitions", await f.text());
    $("#upload-result").textContent = r && r.warnings ? "imported with warnings:\n" + r.warnings.join("\n") : "imported";
  } catch (e) {
    $("#upload-result").textContent = "refused: " + e.message;
  }
});

if (auth) start(); else logout();
