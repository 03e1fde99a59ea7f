// The member page: find a station with cars or free bays, reserve, follow the current rental, read
// invoices. Mobile-first; data from /api/v1 (member session cookie).
import { api, ApiError, h, table, when } from "./dom.js";

const main = document.getElementById("main");
let session = null;

async function start() {
  session = await api("session");
  document.getElementById("logout").addEventListener("click", async () => {
    await api("logout", { method: "POST" });
    session = { authenticated: false };
    login("Logged out.");
  });
  if (session.authenticated) show(); else login();
}

function login(message = "") {
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
  const error = h("p", { class: "error", role: "alert", id: "login-error" }, message);
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true });
  main.replaceChildren(h("form", { class: "login", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api("login", { method: "POST", body: { token: input.value } });
      session = await api("session");
      show();
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 401 ? "Unknown or revoked token." : err.message;
    }
  } }, h("h1", {}, "My car sharing"), h("label", { for: "token" }, "Member token", input), error,
  h("button", { class: "primary", type: "submit" }, "Log in")));
  input.focus();
}

async function show() {
  document.getElementById("logout").hidden = false;
  const me = await api("/api/v1/me");
  document.getElementById("who").textContent = me.name || session.member_id;
  const rental = h("section", { id: "rental", "aria-live": "polite" });
  const stations = h("section", { id: "stations" });
  const invoices = h("section", { id: "invoices" });
  main.replaceChildren(rental, stations, invoices);
  await Promise.all([showRental(rental), showStations(stations, me.city, "cars"), showInvoices(invoices)]);
}

async function showRental(section) {
  const { rental } = await api("/api/v1/me/rental");
  if (!rental) { section.replaceChildren(h("h2", {}, "Current rental"), h("p", { class: "muted" }, "None.")); return; }
  section.replaceChildren(h("h2", {}, "Current rental"),
    h("div", { class: "card" }, h("p", { id: "rental-state" }, `${rental.state}: car ${rental.car_id}`),
      rental.station_id ? h("p", {}, `at ${rental.station_id}`) : "",
      ["reserved", "new"].includes(rental.state) ? h("button", { type: "button", onclick: async () => {
        await api("/api/v1/me/reservation", { method: "DELETE" });
        showRental(section);
      } }, "Cancel reservation") : ""));
}

async function showStations(section, city, want) {
  const message = h("p", { role: "status", id: "reserve-outcome" });
  const load = async (near) => {
    const query = new URLSearchParams({ city, with: want, limit: "15" });
    if (near) query.set("near", near);
    const rows = await api(`/api/v1/stations?${query}`);
    const list = Array.isArray(rows) ? rows : rows.stations || [];
    body.replaceChildren(table([["Station", (s) => s.name],
      [want === "cars" ? "Cars" : "Free bays", (s) => (want === "cars" ? s.cars : s.free_bays)],
      ["", (s) => h("button", { type: "button", onclick: () => reserve(s.id) },
        want === "cars" ? "Reserve a car" : "Reserve a bay")]], list, "No station found."));
  };
  const reserve = async (stationId) => {
    try {
      const path = want === "cars" ? "/api/v1/me/reservation" : "/api/v1/me/reservation/bay";
      const r = await api(path, { method: "POST", body: { station_id: stationId } });
      message.textContent = `Reserved: ${r.car_id ? `car ${r.car_id}` : "a bay"} at ${stationId}.`;
      showRental(document.getElementById("rental"));
    } catch (err) { message.textContent = `Not reserved: ${err.message}`; }
  };
  const body = h("div", {});
  const near = h("button", { type: "button", onclick: () => navigator.geolocation &&
    navigator.geolocation.getCurrentPosition((p) => load(`${p.coords.latitude},${p.coords.longitude}`)) },
  "Near me");
  const kind = h("select", { id: "want", onchange: (e) => showStations(section, city, e.target.value) },
    h("option", { value: "cars", selected: want === "cars" }, "a car"),
    h("option", { value: "bays", selected: want === "bays" }, "a free bay"));
  section.replaceChildren(h("h2", {}, "Find a station"),
    h("form", { class: "inline", onsubmit: (e) => e.preventDefault() }, h("label", { for: "want" }, "I need", kind), near),
    message, body);
  await load(null);
}

async function showInvoices(section) {
  const statement = await api("/api/v1/me/invoices");
  section.replaceChildren(h("h2", {}, "Invoices"),
    table([["Date", (i) => when(i.issued_at)], ["Kind", (i) => i.kind], ["Total", (i) => i.total]],
      statement.invoices || [], "No invoice yet."));
}

start().catch((err) => main.replaceChildren(h("p", { class: "error", role: "alert" }, err.message)));
