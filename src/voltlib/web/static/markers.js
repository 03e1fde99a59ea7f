// Station markers: one link per station (Tab, Enter), coloured by cars available, updated in place
// when the station status changes. Activating one opens its popup instead of leaving the map.
import { h } from "./dom.js";
import { availability } from "./map.js";

function describe(st, status) {
  const state = availability(status);
  const label = `${st.name[0].text}: ${status ? status.num_vehicles_available : "?"} cars, ` +
    `${status ? status.num_docks_available : "?"} free bays${state === "closed" ? " (closed)" : ""}`;
  return [state, label];
}

export function stationMarkers(map, stations, statusById, hrefOf, onOpen) {
  const { L } = window;
  const links = new Map();
  for (const st of stations) {
    const link = h("a", { href: hrefOf(st), class: "marker", "data-station": st.station_id });
    link.addEventListener("click", (e) => {
      e.preventDefault();
      e.stopPropagation();  // the popup, not Leaflet's own click handling
      onOpen(st, link);
    });
    const icon = L.divIcon({ html: link, className: "station-icon", iconSize: [14, 14] });
    L.marker([st.lat, st.lon], { icon, keyboard: false }).addTo(map);
    links.set(st.station_id, link);
  }
  const update = (byId) => {
    for (const st of stations) {
      const [state, label] = describe(st, byId.get(st.station_id));
      const link = links.get(st.station_id);
      link.dataset.state = state;
      link.setAttribute("aria-label", label);
      link.title = label;
    }
  };
  update(statusById);
  return { update };
}
