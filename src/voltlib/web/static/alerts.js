// Open security incidents drawn where they happen: a blinking ring on the station whose charge
// point raised it (the charge point -> station index comes from /dashboard/map/<city>/charge-points).
import { h } from "./dom.js";

export function alertsByStation(incidents, stationOf) {
  const out = new Map();
  for (const incident of incidents) {
    const station = stationOf[incident.charge_point_id];
    if (!station) continue;
    if (!out.has(station)) out.set(station, []);
    out.get(station).push(incident);
  }
  return out;
}

export function alertLayer(map, stationsById) {
  const { L } = window;
  const layer = L.layerGroup().addTo(map);
  const draw = (byStation) => {
    layer.clearLayers();
    for (const [id, incidents] of byStation) {
      const st = stationsById.get(id);
      if (!st) continue;
      const label = `${incidents.length} open alert(s) at ${st.name[0].text}: ${incidents.map((i) => i.title).join("; ")}`;
      const ring = h("span", { class: "alert-ring", "data-station": id, role: "img", "aria-label": label, title: label });
      const icon = L.divIcon({ html: ring, className: "alert-icon", iconSize: [30, 30] });
      L.marker([st.lat, st.lon], { icon, interactive: false, keyboard: false, zIndexOffset: -100 }).addTo(layer);
    }
  };
  return { draw };
}
