// The offline basemap: the city's outlines and river from static/basemap/<city>.json (open data
// packaged with voltlib, see basemap/README.md), drawn under everything else.
export async function addBasemap(map, city, { underTiles = false } = {}) {
  const { L } = window;
  const response = await fetch(`static/basemap/${encodeURIComponent(city)}.json`);
  if (!response.ok) return null;
  const data = await response.json();
  map.createPane("basemap").style.zIndex = 300;  // above tiles (200), under paths (400) and markers
  const style = (feature) => (feature.properties.kind === "river"
    ? { className: "basemap-river", color: "#7fb2e0", weight: 7, opacity: 0.9, lineCap: "round" }
    : { className: "basemap-district", color: "#9aa4ae", weight: 1, fillColor: "#f7f8fa",
      fillOpacity: underTiles ? 0 : 1 });
  return L.geoJSON(data, { pane: "basemap", style, interactive: false, attribution: data.attribution }).addTo(map);
}
