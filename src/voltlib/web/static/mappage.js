// The map page (#/map): stations on a Leaflet map over the city's offline basemap, a popup per
// station, field tasks as arrows, open alerts blinking, a legend and a searchable station list.
// Live: each bus event refreshes what it concerns, without redrawing the map (pan and zoom stay).
import { alertLayer, alertsByStation } from "./alerts.js";
import { debounce, gbfs } from "./data.js";
import { api, h, table } from "./dom.js";
import { availability, newMap } from "./map.js";
import { stationMarkers } from "./markers.js";
import { stationPopup } from "./popup.js";
import { LIVE, taskLayer } from "./tasks.js";

const LEGEND = [["ok", "2+ cars"], ["low", "1 car"], ["empty", "no car"], ["closed", "closed"]];

function legend(info, byId) {
  const counts = { ok: 0, low: 0, empty: 0, closed: 0 };
  for (const st of info.stations) counts[availability(byId.get(st.station_id))]++;
  return [...LEGEND.map(([k, label]) => h("span", {}, h("span", { class: `dot ${k}`, "aria-hidden": "true" }),
    `${label}: ${counts[k]}`)),
  h("span", {}, h("span", { class: "legend-arrow", "aria-hidden": "true" }), "field task"),
  h("span", {}, h("span", { class: "legend-alert", "aria-hidden": "true" }), "open alert")];
}

function stationList(info, byId, hrefOf, filter) {
  const q = filter.trim().toLowerCase();
  const rows = info.stations.filter((st) => !q || st.station_id.includes(q) ||
    st.name[0].text.toLowerCase().includes(q)).slice(0, 50);
  return table([
    ["Station", (st) => h("a", { href: hrefOf(st) }, st.name[0].text)],
    ["Cars", (st) => byId.get(st.station_id)?.num_vehicles_available ?? "?"],
    ["Free bays", (st) => byId.get(st.station_id)?.num_docks_available ?? "?"],
    ["Capacity", (st) => st.capacity ?? ""],
  ], rows, "No station matches.");
}

// ``session``: the dashboard session (tile_url, basemaps, features, role); returns the page's live handler.
export async function showMapPage(main, { city, picker, session }) {
  const [info, status] = await Promise.all([gbfs(city, "station_information"), gbfs(city, "station_status")]);
  const features = session.features || {};
  const canTasks = ["admin", "operator"].includes(session.role);
  let byId = new Map(status.stations.map((st) => [st.station_id, st]));
  const stationsById = new Map(info.stations.map((st) => [st.station_id, st]));
  const hrefOf = (st) => `#/station/${city}/${encodeURIComponent(st.station_id)}`;
  const legendEl = h("p", { class: "legend", id: "legend" }, legend(info, byId));
  const filter = h("input", { id: "station-filter", type: "search", placeholder: "name or id" });
  const list = h("div", { id: "station-list" }, stationList(info, byId, hrefOf, ""));
  filter.addEventListener("input", () => list.replaceChildren(stationList(info, byId, hrefOf, filter.value)));
  const container = h("div", { id: "station-map", class: "map", role: "region",
    "aria-label": `Map of ${info.stations.length} stations` });
  main.replaceChildren(h("h1", {}, "Stations"),
    h("form", { class: "inline", onsubmit: (e) => e.preventDefault() }, h("label", { for: "city" }, "City", picker),
      h("label", { for: "station-filter" }, "Find a station", filter)),
    legendEl, info.stations.length ? container : h("p", { class: "muted" }, "No station in this city yet."),
    h("h2", {}, "Station list"), list);
  if (!info.stations.length) return () => {};

  const map = await newMap(container, info.stations, { city, tileUrl: session.tile_url, basemaps: session.basemaps });
  const stationOf = features.incidents ? await api(`map/${encodeURIComponent(city)}/charge-points`) : {};
  let alerts = new Map();
  const popup = window.L.popup({ maxWidth: 340, minWidth: 260, className: "station-popup-frame" });
  let shown = null;  // the station whose popup is open
  const focusTitle = () => popup.getElement()?.querySelector("h3")?.focus({ preventScroll: true });
  // A live refresh replaces the popup's content: a keyboard user whose focus was in it keeps it
  // (on the new title) instead of being thrown back to the page.
  const fill = async (st) => {
    const content = await stationPopup(st, byId.get(st.station_id), { features, href: hrefOf(st),
      incidents: alerts.get(st.station_id) || [],
      vehicles: features.stations ? [] : (await gbfs(city, "vehicle_status")).vehicles });
    if (shown !== st) return;
    const hadFocus = popup.getElement()?.contains(document.activeElement) ?? false;
    popup.setContent(content);
    if (hadFocus) focusTitle();
  };
  const open = async (st) => {
    shown = st;
    popup.setLatLng([st.lat, st.lon]).setContent(h("p", {}, "Loading…")).openOn(map);
    await fill(st);
    if (shown === st) focusTitle();
  };
  map.on("popupclose", () => { shown = null; });
  const markers = stationMarkers(map, info.stations, byId, hrefOf, open);
  const arrows = taskLayer(map, stationsById);
  const rings = alertLayer(map, stationsById);

  const refreshStatus = debounce(async () => {
    byId = new Map((await gbfs(city, "station_status")).stations.map((st) => [st.station_id, st]));
    markers.update(byId);
    legendEl.replaceChildren(...legend(info, byId));
    list.replaceChildren(stationList(info, byId, hrefOf, filter.value));
    if (shown) fill(shown);
  }, 1500);
  const refreshTasks = debounce(async () => {
    if (!canTasks) return;
    const tasks = await api(`/api/v1/rebalancing/tasks?city=${encodeURIComponent(city)}&limit=200`);
    arrows.draw(tasks.filter((t) => LIVE.includes(t.state)));
  }, 300);
  const refreshAlerts = debounce(async () => {
    if (!features.incidents) return;
    alerts = alertsByStation(await api("/api/v1/security/incidents?state=open"), stationOf);
    rings.draw(alerts);
    if (shown) fill(shown);
  }, 500);
  refreshTasks();
  refreshAlerts();
  return (event) => {
    if (event.topic === "rebalancing.task") refreshTasks();
    else if (event.topic.startsWith("security") || event.topic === "ocpp.security_event") refreshAlerts();
    else refreshStatus();
  };
}
