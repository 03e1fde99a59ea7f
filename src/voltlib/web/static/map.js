// The station map: Web Mercator projection of lon/lat into an SVG, no tiles needed. When a tile URL
// template ({z}/{x}/{y}) is configured, tiles are laid under the markers at a zoom that fits.
import { s } from "./dom.js";

const W = 960, H = 600, PAD = 24;

function mercator(lat, lon) {
  const r = (lat * Math.PI) / 180;
  return [(lon + 180) / 360, (1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2];
}

export function availability(status) {
  if (!status || !status.is_renting) return "closed";
  if (status.num_vehicles_available === 0) return "empty";
  if (status.num_vehicles_available === 1) return "low";
  return "ok";
}

export const COLOURS = { ok: "#1a7f37", low: "#bf8700", empty: "#cf222e", closed: "#6e7781" };

export function drawMap(stations, statusById, hrefOf, tileUrl) {
  const pts = stations.map((st) => mercator(st.lat, st.lon));
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  const scale = Math.min((W - 2 * PAD) / (maxX - minX || 1e-6), (H - 2 * PAD) / (maxY - minY || 1e-6));
  const offX = (W - 2 * PAD - (maxX - minX) * scale) / 2, offY = (H - 2 * PAD - (maxY - minY) * scale) / 2;
  const px = ([x, y]) => [PAD + offX + (x - minX) * scale, PAD + offY + (y - minY) * scale];
  const svg = s("svg", { class: "map", viewBox: `0 0 ${W} ${H}`, role: "group",
    "aria-label": `Map of ${stations.length} stations`, id: "station-map" });
  if (tileUrl) svg.append(tiles(tileUrl, scale, minX - offX / scale, minY - offY / scale));
  const r = stations.length > 300 ? 4 : 7;
  stations.forEach((st, i) => {
    const [x, y] = px(pts[i]);
    const state = availability(statusById.get(st.station_id));
    const status = statusById.get(st.station_id);
    const label = `${st.name[0].text}: ${status ? status.num_vehicles_available : "?"} cars, ` +
      `${status ? status.num_docks_available : "?"} free bays${state === "closed" ? " (closed)" : ""}`;
    svg.append(s("a", { href: hrefOf(st), "aria-label": label, class: "marker", "data-station": st.station_id,
      "data-state": state },
      s("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r, fill: COLOURS[state] }), s("title", { text: label })));
  });
  return svg;
}

function tiles(template, scale, minX, minY) {
  const g = s("g", { "aria-hidden": "true" });
  const z = Math.max(0, Math.min(19, Math.round(Math.log2(scale / 256))));
  const n = 2 ** z, size = scale / n;
  const x0 = Math.floor(minX * n), y0 = Math.floor(minY * n);
  for (let tx = x0; tx < x0 + Math.ceil(W / size) + 1; tx++) {
    for (let ty = y0; ty < y0 + Math.ceil(H / size) + 1; ty++) {
      const href = template.replace("{z}", z).replace("{x}", tx).replace("{y}", ty);
      g.append(s("image", { href, x: PAD + (tx / n - minX) * scale, y: PAD + (ty / n - minY) * scale,
        width: size, height: size }));
    }
  }
  return g;
}
