// A station's popup on the map: availability, its cars with charge and range, power drawn against
// the station's grid limit, and the open security incidents of its charge points.
import { api, h, table } from "./dom.js";

const kw = (w) => (w / 1000).toFixed(1);

async function cars(st, vehicles, features) {
  if (features.stations) {
    const detail = await api(`/api/v1/stations/${encodeURIComponent(st.station_id)}`);
    return (detail.vehicles || []).map((v) => ({ id: v.id, soc: v.soc_percent, range: v.range_km, status: v.status }));
  }
  return vehicles.filter((v) => v.station_id === st.station_id).map((v) => ({ id: v.vehicle_id,
    soc: v.current_fuel_percent * 100, range: v.current_range_meters / 1000, status: "available" }));
}

function powerLine(p) {
  if (!p) return "";
  return h("p", { class: "popup-power" }, `Power ${kw(p.drawn_w)} kW of a ${kw(p.limit_w)} kW limit `,
    h("meter", { min: 0, max: p.limit_w || 1, high: 0.95 * (p.limit_w || 1), value: p.drawn_w,
      "aria-label": "power against the grid limit" }));
}

// ``load`` gives the station's vehicles (GBFS) when the stations API is absent; ``incidents`` are
// the open ones at this station.
export async function stationPopup(st, status, { features, href, incidents, vehicles }) {
  const [list, power] = await Promise.all([cars(st, vehicles, features),
    features.stations ? api(`/api/v1/stations/${encodeURIComponent(st.station_id)}/power-limit`).catch(() => null)
      : null]);
  const now = status || {};
  return h("div", { class: "station-popup", id: "station-popup", "data-station": st.station_id },
    h("h3", { tabindex: "-1" }, st.name[0].text),
    h("p", { class: "popup-availability" }, `${now.num_vehicles_available ?? "?"} cars available, ` +
      `${now.num_docks_available ?? "?"} free bays of ${st.capacity ?? "?"}${now.is_renting === false ? " · closed" : ""}`),
    table([["Car", (c) => c.id], ["Charge", (c) => (c.soc == null ? "" : `${Math.round(c.soc)} %`)],
      ["Range", (c) => (c.range == null ? "" : `${Math.round(c.range)} km`)], ["State", (c) => c.status || ""]],
    list, "No car here."),
    powerLine(power),
    incidents.length ? h("ul", { class: "popup-alerts" }, incidents.map((i) =>
      h("li", {}, `Alert: ${i.title} (${i.severity}, ${i.charge_point_id})`))) : h("p", { class: "muted" }, "No open alert."),
    h("p", {}, h("a", { href }, "Station page")));
}
