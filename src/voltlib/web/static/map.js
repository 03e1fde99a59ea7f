// The Leaflet map itself: pan and zoom, an optional online tile layer (the map_tile_url setting),
// the city's offline basemap, fitted to the stations. Leaflet is vendored (vendor/leaflet/) and
// loaded by index.html as a classic script, so it is window.L here.
import { addBasemap } from "./basemap.js";

export function availability(status) {
  if (!status || !status.is_renting) return "closed";
  if (status.num_vehicles_available === 0) return "empty";
  if (status.num_vehicles_available === 1) return "low";
  return "ok";
}

export const COLOURS = { ok: "#1a7f37", low: "#bf8700", empty: "#cf222e", closed: "#6e7781" };

// ``container`` must already be in the page (Leaflet measures it).
export async function newMap(container, stations, { city, tileUrl, basemaps }) {
  const { L } = window;
  const map = L.map(container, { zoomSnap: 0.25, minZoom: 3, maxZoom: 19 });
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  if (tileUrl) L.tileLayer(tileUrl, { maxZoom: 19, attribution: "Tiles: the configured map_tile_url" }).addTo(map);
  const bounds = L.latLngBounds(stations.map((st) => [st.lat, st.lon]));
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [16, 16], maxZoom: 16 });
  else map.setView([48.8566, 2.3522], 12);
  const scale = () => {  // markers shrink when zoomed out, so that the streets and the river show between them
    const z = map.getZoom();
    container.dataset.zoom = z < 12.5 ? "far" : z < 14 ? "mid" : "near";
  };
  map.on("zoomend", scale);
  scale();
  if ((basemaps || []).includes(city)) {  // a city with a basemap opens on it (suburbs: zoom out)
    const layer = await addBasemap(map, city, { underTiles: Boolean(tileUrl) });
    if (layer) map.fitBounds(layer.getBounds(), { padding: [8, 8] });
  }
  return map;
}
