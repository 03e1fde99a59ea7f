// The operator dashboard: a hash-routed single page. Data from /api/v1 (session cookie) and the
// public GBFS files; live updates from /dashboard/events (Server-Sent Events).
import { api, apiAll, ApiError, h, table, when } from "./dom.js";
import { lineChart, powerSeries } from "./chart.js";
import { cities, debounce, gbfs } from "./data.js";
import { showMapPage } from "./mappage.js";

const main = document.getElementById("main");
const state = { session: null, city: null, render: null, reload: null };

// ---- session -------------------------------------------------------------------------------
async function start() {
  state.session = await api("session");
  document.getElementById("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  if (state.session.authenticated) loggedIn();
  else showLogin();
}

function showLogin(message = "") {
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
  const error = h("p", { class: "error", role: "alert", id: "login-error" }, message);
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "current-password",
    required: true });
  const form = h("form", { class: "login", id: "login-form", onsubmit: async (e) => {
    e.preventDefault();
    try {
      state.session = await api("login", { method: "POST", body: { token: input.value } });
      state.session.authenticated = true;
      const info = await api("session");
      state.session = info;
      loggedIn();
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 401 ? "Unknown or revoked token." : err.message;
      input.focus();
    }
  } },
  h("h1", {}, "Log in"),
  h("p", { class: "muted" }, "Use an API token of role admin, operator or security (voltlib token create)."),
  h("label", { for: "token" }, "API token", input), error,
  h("button", { class: "primary", type: "submit" }, "Log in"));
  main.replaceChildren(form);
  input.focus();
}

async function logout() {
  await api("logout", { method: "POST" });
  if (state.events) state.events.close();
  state.session = { authenticated: false };
  showLogin("Logged out.");
}

function loggedIn() {
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  document.getElementById("who").textContent = `${state.session.principal} (${state.session.role})`;
  listen();
  route();
}

const canWrite = () => ["admin", "operator"].includes(state.session.role);
const canSecurity = () => ["admin", "security"].includes(state.session.role);

// ---- routing -------------------------------------------------------------------------------
const routes = [
  [/^#\/station\/([^/]+)\/(.+)$/, stationPage],
  [/^#\/charge-points$/, chargePointsPage],
  [/^#\/cp\/(.+)$/, chargePointPage],
  [/^#\/alerts$/, alertsPage],
  [/^#\/rentals(?:\/(.+))?$/, rentalsPage],
  [/^#\/rebalancing(?:\?(.*))?$/, (query) => rebalancingPage(query || "")],
  [/^(#\/map)?$/, mapPage],
];

async function route() {
  if (!state.session || !state.session.authenticated) return;
  const hash = location.hash || "#/map";
  for (const link of document.querySelectorAll("header nav a")) {
    const current = hash.startsWith(link.getAttribute("href")) ||
      (link.getAttribute("href") === "#/map" && hash.startsWith("#/station")) ||
      (link.getAttribute("href") === "#/charge-points" && hash.startsWith("#/cp/"));
    if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  for (const [pattern, page] of routes) {
    const m = hash.match(pattern);
    if (m) {
      state.reload = null;
      state.onEvent = null;
      try {
        // an optional part that is absent stays undefined (decodeURIComponent would make it "undefined")
        await page(...m.slice(1).map((part) => (part === undefined ? undefined : decodeURIComponent(part))));
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) return showLogin("Your session has ended.");
        main.replaceChildren(h("p", { class: "error", role: "alert" }, `Could not load: ${err.message}`));
      }
      return;
    }
  }
  main.replaceChildren(h("p", {}, "No such page."));
}

// ---- live updates ---------------------------------------------------------------------------
function listen() {
  if (state.events) state.events.close();
  const live = document.getElementById("live");
  const events = new EventSource("events");
  state.events = events;
  events.addEventListener("hello", () => { live.textContent = "live"; });
  events.addEventListener("resync", () => state.reload && state.reload());
  events.onerror = () => { live.textContent = "reconnecting…"; };
  events.onmessage = (message) => {
    const event = JSON.parse(message.data);
    live.textContent = `live · ${event.topic} ${event.charge_point_id}`;
    if (state.onEvent) state.onEvent(event);
  };
}

// ---- map -------------------------------------------------------------------------------------
// The city the pages show: the one picked last, else the first that has stations.
async function pickCity(all) {
  if (!all.includes(state.city)) {
    state.city = all[0];
    for (const c of all) {
      if ((await gbfs(c, "station_information")).stations.length) { state.city = c; break; }
    }
  }
  return state.city;
}

function cityPicker(all, city, id, page) {
  return h("select", { id, onchange: (e) => { state.city = e.target.value; page(); } },
    all.map((c) => h("option", { value: c, selected: c === city }, c)));
}

async function mapPage() {
  const all = await cities();
  if (!all.length) {
    main.replaceChildren(h("h1", {}, "Stations"), h("p", { class: "muted" }, "No city is configured yet."));
    return;
  }
  const city = await pickCity(all);
  const onEvent = await showMapPage(main, { city, picker: cityPicker(all, city, "city", mapPage),
    session: state.session });
  state.reload = mapPage;
  state.onEvent = (event) => { if (location.hash === "" || location.hash === "#/map") onEvent(event); };
}

// ---- station ---------------------------------------------------------------------------------
async function stationPage(city, id) {
  const [info, status, vehicles] = await Promise.all([gbfs(city, "station_information"),
    gbfs(city, "station_status"), gbfs(city, "vehicle_status")]);
  const st = info.stations.find((x) => x.station_id === id);
  if (!st) { main.replaceChildren(h("p", { class: "error" }, `No station ${id} in ${city}.`)); return; }
  const now = status.stations.find((x) => x.station_id === id) || {};
  const cars = vehicles.vehicles.filter((v) => v.station_id === id);
  const features = state.session.features || {};
  const detail = features.stations ? await api(`/api/v1/stations/${encodeURIComponent(id)}`).catch(() => null) : null;
  const power = features.stations
    ? await api(`/api/v1/stations/${encodeURIComponent(id)}/power-limit`).catch(() => null) : null;
  if (detail) {  // each bay's connector status, from its charge point
    const ids = [...new Set((detail.bays_detail || []).map((b) => b.charge_point_id))];
    const cps = new Map(await Promise.all(ids.map(async (cp) =>
      [cp, await api(`/api/v1/charge-points/${encodeURIComponent(cp)}`).catch(() => null)])));
    for (const bay of detail.bays_detail || []) {
      const cp = cps.get(bay.charge_point_id);
      const connector = cp && cp.connectors.find((c) => c.connector_id === bay.connector_id);
      bay.connector_status = connector ? connector.status : "never reported";
      bay.online = cp ? cp.connected : false;
    }
  }
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/map" }, "← Map")),
    h("h1", { id: "station-title" }, st.name[0].text),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Now"),
        h("p", { id: "station-availability" }, `${now.num_vehicles_available ?? "?"} cars available, ` +
          `${now.num_docks_available ?? "?"} free bays of ${st.capacity ?? "?"}`),
        h("p", { class: "muted" }, now.is_renting ? "Open" : "Closed", " · reported ", when(now.last_reported))),
      h("div", { class: "card" }, h("h2", {}, "Where"), h("p", {}, st.address || ""),
        h("p", { class: "muted" }, `${st.lat}, ${st.lon}`)),
      power ? powerCard(power) : ""),
    h("h2", {}, "Cars"),
    table([["Car", (v) => v.vehicle_id], ["Charge", (v) => `${Math.round(v.current_fuel_percent * 100)} %`],
      ["Range", (v) => `${Math.round(v.current_range_meters / 1000)} km`]], cars, "No car available here."),
    detail ? stationDetail(detail) : "");
  state.reload = () => stationPage(city, id);
  state.onEvent = debounce(state.reload, 1500);
}

// Charging power against the station's grid limit (smart charging keeps it under).
function powerCard(p) {
  const kw = (w) => (w / 1000).toFixed(1);
  return h("div", { class: "card", id: "station-power" }, h("h2", {}, "Power"),
    h("p", {}, `${kw(p.drawn_w)} kW drawn of a ${kw(p.limit_w)} kW limit`),
    h("meter", { min: 0, max: p.limit_w || 1, high: 0.95 * (p.limit_w || 1), value: p.drawn_w,
      "aria-label": "power against the grid limit" }),
    h("p", { class: "muted" }, `planned ${kw(p.planned_w)} kW · ${p.configured ? "limit set" : "default limit"}` +
      ` · bays rated ${kw(p.rated_total_w)} kW`));
}

function stationDetail(detail) {
  const cars = new Map((detail.vehicles || []).map((v) => [v.id, v]));
  return h("section", {}, h("h2", {}, "Bays and charge points"),
    table([["Bay", (b) => b.number],
      ["Charge point", (b) => h("a", { href: `#/cp/${encodeURIComponent(b.charge_point_id)}` },
        `${b.charge_point_id} / ${b.connector_id}`)],
      ["Connector", (b) => h("span", { class: `status-${b.connector_status}` }, b.connector_status || "")],
      ["Online", (b) => (b.online ? "yes" : "no")],
      ["Car", (b) => b.car_id || "free"],
      ["Charge", (b) => { const c = cars.get(b.car_id); return c && c.soc_percent != null ? `${Math.round(c.soc_percent)} %` : ""; }],
      ["Range", (b) => { const c = cars.get(b.car_id); return c && c.range_km != null ? `${Math.round(c.range_km)} km` : ""; }],
      ["Car status", (b) => cars.get(b.car_id)?.status || ""],
    ], detail.bays_detail || [], "No bay recorded."));
}

// ---- charge points ---------------------------------------------------------------------------
async function chargePointsPage() {
  const cps = await apiAll("/api/v1/charge-points"); // every page: a city has thousands
  main.replaceChildren(h("h1", {}, "Charge points ", h("span", { id: "cp-count", class: "muted" }, `(${cps.length})`)),
    table([["Id", (cp) => h("a", { href: `#/cp/${encodeURIComponent(cp.id)}` }, cp.id)],
      ["Online", (cp) => (cp.connected ? "yes" : "no")], ["Registration", (cp) => cp.registration],
      ["Model", (cp) => [cp.vendor, cp.model].filter(Boolean).join(" ")], ["Last seen", (cp) => when(cp.last_seen_at)]],
    cps, "No charge point registered."));
  state.reload = chargePointsPage;
  state.onEvent = debounce(chargePointsPage, 1000);
}

const COMMANDS = [
  ["Reset", "Reset", [["type", ["Soft", "Hard"]]]],
  ["UnlockConnector", "Unlock", [["connectorId", "connector"]]],
  ["ChangeAvailability", "Availability", [["connectorId", "connector0"], ["type", ["Operative", "Inoperative"]]]],
];

async function chargePointPage(id) {
  const base = `/api/v1/charge-points/${encodeURIComponent(id)}`;
  const [cp, history, commands, meterValues] = await Promise.all([api(base), api(`${base}/status-history`),
    api(`${base}/commands`), canWrite() || canSecurity() ? api(`${base}/meter-values`) : []]);
  const energy = cp.connectors.filter((c) => c.connector_id > 0).map((c) => {
    const series = powerSeries(meterValues, c.connector_id);
    return h("figure", { class: "card" }, h("figcaption", {}, `Connector ${c.connector_id}: power (kW)`),
      series.length >= 2 ? lineChart(series, { label: `Connector ${c.connector_id} power`, unit: "kW" })
        : h("p", { class: "muted" }, "Not enough meter values yet."));
  });
  const messages = canSecurity() ? await api(`${base}/messages`) : null;
  const connectorIds = cp.connectors.map((c) => c.connector_id).filter((n) => n > 0);
  const outcome = h("p", { id: "command-outcome", role: "status", "aria-live": "polite" });
  const forms = canWrite() ? COMMANDS.map(([action, label, fields]) => commandForm(base, action, label, fields,
    connectorIds, outcome)) : [h("p", { class: "muted" }, "Your role may not send commands.")];
  if (canSecurity() && features().quarantine) forms.push(quarantineForm(base, cp, outcome, id));
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/charge-points" }, "← Charge points")),
    h("h1", {}, `Charge point ${cp.id}`),
    h("p", { id: "cp-online" }, cp.connected ? "Online" : "Offline", ` · ${cp.registration} · profile ${cp.security_profile}`,
      cp.last_seen_at ? ` · last seen ${when(cp.last_seen_at)}` : ""),
    cp.quarantined ? h("p", { class: "error", id: "cp-quarantined" }, "In quarantine") : "",
    h("h2", {}, "Connectors"),
    h("div", { id: "connectors" }, connectorsTable(cp.connectors)),
    h("h2", {}, "Energy"), h("div", { class: "grid", id: "energy" }, energy),
    h("h2", {}, "Commands"), ...forms, outcome,
    h("div", { id: "commands" }, commandsTable(commands)),
    h("h2", {}, "Status history"),
    h("div", { id: "history" }, historyTable(history)),
    messages ? h("section", {}, h("h2", {}, "Last messages"), table([["At", (m) => when(m.at)],
      ["From", (m) => m.initiator], ["Action", (m) => m.action], ["Outcome", (m) => m.outcome]], messages.slice(0, 30)))
      : "");
  state.reload = () => chargePointPage(id);
  state.onEvent = (event) => {
    if (event.charge_point_id !== id) return;
    if (event.topic === "ocpp.status") {
      const cell = document.querySelector(`[data-connector="${event.connector_id}"]`);
      if (cell) {
        cell.textContent = event.status;
        cell.className = `status-${event.status} flash`;
      }
    }
    refresh();
  };
  const refresh = debounce(async () => {
    const [fresh, freshCommands, freshHistory] = await Promise.all([api(base), api(`${base}/commands`),
      api(`${base}/status-history`)]);
    document.getElementById("connectors")?.replaceChildren(connectorsTable(fresh.connectors));
    document.getElementById("commands")?.replaceChildren(commandsTable(freshCommands));
    document.getElementById("history")?.replaceChildren(historyTable(freshHistory));
  }, 300);
}

const features = () => (state.session && state.session.features) || {};

function quarantineForm(base, cp, outcome, id) {
  if (cp.quarantined) {
    return h("form", { class: "inline", "data-command": "release", onsubmit: async (e) => {
      e.preventDefault();
      await run(outcome, () => api(`${base}/release`, { method: "POST", body: {} }), "Release");
      chargePointPage(id);
    } }, h("button", { type: "submit" }, "Release from quarantine"));
  }
  const reason = h("input", { id: "quarantine-reason", name: "reason", required: true, placeholder: "why" });
  return h("form", { class: "inline", "data-command": "quarantine", onsubmit: async (e) => {
    e.preventDefault();
    await run(outcome, () => api(`${base}/quarantine`, { method: "POST", body: { reason: reason.value } }),
      "Quarantine");
  } }, h("label", { for: "quarantine-reason" }, "Reason", reason), h("button", { class: "danger", type: "submit" },
    "Quarantine"));
}

function historyTable(history) {
  return table([["At", (r) => when(r.status_at)], ["Connector", (r) => r.connector_id],
    ["Status", (r) => h("span", { class: `status-${r.status}` }, r.status)], ["Error", (r) => r.error_code],
    ["Expected", (r) => (r.expected ? "yes" : "no")]], history.slice(0, 30));
}

function connectorsTable(connectors) {
  return table([["Connector", (c) => c.connector_id],
    ["Status", (c) => h("span", { class: `status-${c.status}`, "data-connector": c.connector_id }, c.status)],
    ["Error", (c) => c.error_code || ""], ["Since", (c) => when(c.status_at)]], connectors, "No status reported yet.");
}

function commandsTable(commands) {
  return table([["#", (c) => c.id], ["Action", (c) => c.action], ["State", (c) => c.state],
    ["Answer", (c) => (c.response && c.response.status) || c.error_code || ""], ["By", (c) => c.requested_by || ""],
    ["At", (c) => when(c.created_at)]], commands.slice(0, 10), "No command sent yet.");
}

function commandForm(base, action, label, fields, connectorIds, outcome) {
  const inputs = fields.map(([name, kind]) => {
    const id = `${action}-${name}`;
    const options = Array.isArray(kind) ? kind : (kind === "connector0" ? [0, ...connectorIds] : connectorIds.length
      ? connectorIds : [1]);
    return [name, h("label", { for: id }, name, h("select", { id, name }, options.map((o) => h("option", { value: o }, o))))];
  });
  return h("form", { class: "inline", "data-command": action, onsubmit: async (e) => {
    e.preventDefault();
    const body = {};
    for (const [name, labelEl] of inputs) {
      const value = labelEl.querySelector("select").value;
      body[name] = name === "connectorId" ? Number(value) : value;
    }
    await run(outcome, () => api(`${base}/commands/${action}`, { method: "POST", body }), label);
  } }, inputs.map(([, el]) => el), h("button", { type: "submit" }, label));
}

async function run(outcome, call, label) {
  outcome.textContent = `${label}: sending…`;
  try {
    const result = await call();
    const answer = result && result.response && result.response.status;
    outcome.textContent = `${label}: ${result.state || "done"}${answer ? ` (${answer})` : ""}`;
  } catch (err) {
    outcome.textContent = `${label} failed: ${err.message}`;
  }
}

// ---- rentals and members ---------------------------------------------------------------------
function rentalsTable(rentals) {
  return table([["Rental", (r) => r.rental_id], ["State", (r) => r.state], ["Member", (r) => h("a", {
    href: `#/rentals/${encodeURIComponent(r.member_id)}` }, r.member_id)], ["Car", (r) => r.car_id],
  ["Plan", (r) => r.plan_code || ""], ["Reserved or started", (r) => when(r.reserved_at || r.started_at)],
  ["Total", (r) => (r.charged ? `${r.charged.total} ${r.charged.currency}` : "")]], rentals, "No rental.");
}

async function rentalsPage(memberId) {
  if (!canWrite()) {
    main.replaceChildren(h("h1", {}, "Rentals"), h("p", { class: "muted" }, "Rentals are for the admin and operator roles."));
    return;
  }
  const [members, rentals] = await Promise.all([apiAll("/api/v1/members"), // the filter searches them all
    api(memberId ? `/api/v1/rentals?member=${encodeURIComponent(memberId)}` : "/api/v1/rentals")]);
  const filter = h("input", { id: "member-filter", type: "search", placeholder: "name, e-mail or id" });
  const list = h("div", { id: "member-list" });
  const show = () => {
    const q = filter.value.trim().toLowerCase();
    list.replaceChildren(table([["Member", (m) => h("a", { href: `#/rentals/${encodeURIComponent(m.id)}` }, m.name)],
      ["E-mail", (m) => m.email], ["City", (m) => m.city], ["Plan", (m) => m.plan_code || ""],
      ["Licence verified", (m) => (m.licence_verified ? "yes" : "no")]],
    members.filter((m) => !q || [m.id, m.name, m.email].some((v) => String(v).toLowerCase().includes(q))).slice(0, 50),
    "No member matches."));
  };
  filter.addEventListener("input", show);
  show();
  main.replaceChildren(h("h1", {}, "Rentals and members"),
    h("h2", {}, memberId ? `Rentals of ${memberId}` : "Latest rentals"),
    memberId ? h("p", {}, h("a", { href: "#/rentals" }, "All rentals")) : "",
    rentalsTable(rentals.slice(0, 50)),
    h("h2", {}, "Members"), h("form", { class: "inline", onsubmit: (e) => e.preventDefault() },
      h("label", { for: "member-filter" }, "Find a member", filter)), list);
  state.reload = () => rentalsPage(memberId);
}

// ---- rebalancing: recommended moves and the field tasks made of them -------------------------
const NEXT_STEPS = { proposed: [["Assign", "assign"], ["Cancel", "cancel"]],
  assigned: [["Start", "start"], ["Cancel", "cancel"]], in_progress: [["Complete", "complete"], ["Cancel", "cancel"]] };

// ``query``: what the forecast assumes, passed on to GET …/moves (e.g. #/rebalancing?hours=3&rentals_per_day=60)
async function rebalancingPage(query = "", message = "") {
  if (!canWrite()) {
    main.replaceChildren(h("h1", {}, "Rebalancing"), h("p", { class: "muted" }, "Rebalancing is for the admin and operator roles."));
    return;
  }
  const all = await cities();
  if (!all.length) {
    main.replaceChildren(h("h1", {}, "Rebalancing"), h("p", { class: "muted" }, "No city is configured yet."));
    return;
  }
  const city = await pickCity(all);
  const base = "/api/v1/rebalancing";
  const assumptions = new URLSearchParams(query || "");
  assumptions.set("city", city);
  const [report, tasks] = await Promise.all([api(`${base}/moves?${assumptions}`),
    api(`${base}/tasks?city=${encodeURIComponent(city)}&limit=50`)]);
  const outcome = h("p", { id: "rebalancing-outcome", role: "status" }, message);
  const assignee = h("input", { id: "assignee", value: state.session.principal, required: true, maxlength: 64 });
  const act = async (label, call) => {
    await run(outcome, call, label);
    rebalancingPage(query, outcome.textContent);
  };
  const create = (move) => h("button", { type: "button", onclick: () => act(`Task for ${move.car_id}`,
    () => api(`${base}/tasks`, { method: "POST", body: { ...move, city } })) }, "Create task");
  const step = (task, label, action) => h("button", { type: "button", onclick: () => act(`${label} task ${task.id}`,
    () => api(`${base}/tasks/${task.id}/transition`, { method: "POST",
      body: action === "assign" ? { action, assignee: assignee.value.trim() } : { action } })) }, label);
  main.replaceChildren(h("h1", {}, "Rebalancing"),
    h("form", { class: "inline", onsubmit: (e) => e.preventDefault() },
      h("label", { for: "rebalancing-city" }, "City", cityPicker(all, city, "rebalancing-city", () => rebalancingPage(query)))),
    outcome,
    h("h2", {}, "Recommended moves"),
    h("p", { class: "muted" }, `Next ${report.hours} h, ${report.rentals_per_day} rentals a day expected; ` +
      `${report.live_tasks} live task(s) counted as done.`),
    table([["Car", (m) => m.car_id], ["From", (m) => m.from_station], ["To", (m) => m.to_station],
      ["Km", (m) => m.distance_km], ["Why", (m) => (m.reason === "no_bay" ? "no free bay" : "no car")],
      ["By", (m) => when(m.at)], ["", create]], report.moves, "No move needed."),
    h("h2", {}, "Field tasks"),
    h("form", { class: "inline", onsubmit: (e) => e.preventDefault() }, h("label", { for: "assignee" }, "Assign to", assignee)),
    table([["#", (t) => t.id], ["Car", (t) => t.car_id], ["From → to", (t) => `${t.from_station} → ${t.to_station}`],
      ["State", (t) => t.state], ["Assignee", (t) => t.assignee || ""], ["Created", (t) => when(t.created_at)],
      ["", (t) => h("span", { class: "actions" }, (NEXT_STEPS[t.state] || []).map(([label, action]) => step(t, label, action)))]],
    tasks, "No field task."));
  state.reload = () => rebalancingPage(query);
}

// ---- alerts ----------------------------------------------------------------------------------
async function alertsPage() {
  if (features().incidents) return incidentsPage();
  if (!canSecurity()) {
    main.replaceChildren(h("h1", {}, "Alerts"), h("p", { class: "muted" }, "Alerts are for the admin and security roles."));
    return;
  }
  const events = await api("/api/v1/security-events");
  main.replaceChildren(h("h1", {}, "Alerts and security events"),
    table([["At", (e) => when(e.at || e.created_at)], ["Kind", (e) => e.kind], ["Severity", (e) => e.severity],
      ["Charge point", (e) => e.charge_point_id ? h("a", { href: `#/cp/${encodeURIComponent(e.charge_point_id)}` },
        e.charge_point_id) : ""], ["Source", (e) => e.source || ""]], events.slice(0, 100), "No security event."));
  state.reload = alertsPage;
  state.onEvent = (event) => { if (event.topic.startsWith("security") || event.topic === "ocpp.security_event") alertsPage(); };
}

async function incidentsPage(which = "open", message = "") {
  const rows = await api(`/api/v1/security/incidents?state=${which}`);
  const outcome = h("p", { id: "incident-outcome", role: "status" }, message);
  const act = (incident, label, path, body) => h("button", { type: "button", onclick: async () => {
    await run(outcome, () => api(`/api/v1/security/incidents/${incident.id}/${path}`, { method: "POST", body }), label);
    incidentsPage(which, outcome.textContent);
  } }, label);
  const picker = h("select", { id: "incident-state", onchange: (e) => incidentsPage(e.target.value) },
    ["open", "acknowledged", "resolved"].map((v) => h("option", { value: v, selected: v === which }, v)));
  main.replaceChildren(h("h1", {}, "Alerts and incidents"),
    h("form", { class: "inline", onsubmit: (e) => e.preventDefault() }, h("label", { for: "incident-state" }, "State", picker)),
    outcome,
    table([["#", (i) => i.id], ["Opened", (i) => when(i.opened_at)], ["Severity", (i) => i.severity],
      ["Incident", (i) => i.title], ["Alerts", (i) => i.alert_count],
      ["Charge point", (i) => i.charge_point_id ? h("a", { href: `#/cp/${encodeURIComponent(i.charge_point_id)}` },
        i.charge_point_id) : (i.source || "")],
      ["", (i) => canSecurity() ? h("span", { class: "actions" },
        i.state === "open" ? act(i, "Acknowledge", "lifecycle", { action: "acknowledge" }) : "",
        i.state !== "resolved" ? act(i, "Resolve", "lifecycle", { action: "resolve", note: "resolved from the dashboard" }) : "",
        i.charge_point_id && i.state !== "resolved" ? act(i, "Quarantine", "respond", { action: "quarantine",
          reason: `incident ${i.id}` }) : "") : ""]],
    rows, `No ${which} incident.`));
  state.reload = () => incidentsPage(which);
  state.onEvent = debounce(() => { if (location.hash === "#/alerts") incidentsPage(which); }, 1000);
}

start().catch((err) => main.replaceChildren(h("p", { class: "error", role: "alert" }, `voltlib: ${err.message}`)));
