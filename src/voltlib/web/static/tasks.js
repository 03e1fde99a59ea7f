// Field tasks (rebalancing moves) as arrows from the donor to the receiving station, styled by
// state; redrawn whenever a task changes (the rebalancing.task live event).
import { s } from "./dom.js";

export const LIVE = ["proposed", "assigned", "in_progress"];

function head(angle, task) {
  const svg = s("svg", { viewBox: "0 0 40 40", width: 40, height: 40, class: `task-head task-${task.state}`,
    "data-task": task.id }, s("path", { d: "M12 20 L2 13 L2 27 Z" }));
  svg.style.transform = `rotate(${angle}rad)`;  // the tip points along the move, 8 px before the station
  return svg;
}

export function taskLayer(map, stationsById) {
  const { L } = window;
  const layer = L.layerGroup().addTo(map);
  const draw = (tasks) => {
    layer.clearLayers();
    for (const task of tasks.filter((t) => LIVE.includes(t.state))) {
      const from = stationsById.get(task.from_station), to = stationsById.get(task.to_station);
      if (!from || !to) continue;
      const a = [from.lat, from.lon], b = [to.lat, to.lon];
      const label = `Task ${task.id}: car ${task.car_id} from ${from.name[0].text} to ${to.name[0].text}, ` +
        `${task.state.replace("_", " ")}${task.assignee ? ` (${task.assignee})` : ""}`;
      const line = L.polyline([a, b], { className: `task-arrow task-${task.state}`, weight: 3, interactive: true })
        .bindTooltip(label, { sticky: true }).addTo(layer);
      line.getElement().setAttribute("data-task", task.id);
      line.getElement().setAttribute("aria-label", label);
      const pa = map.project(a, 0), pb = map.project(b, 0);  // Mercator keeps angles at every zoom
      const icon = L.divIcon({ html: head(Math.atan2(pb.y - pa.y, pb.x - pa.x), task),
        className: "task-head-icon", iconSize: [40, 40] });
      L.marker(b, { icon, interactive: false, keyboard: false, zIndexOffset: 500 }).addTo(layer);
    }
  };
  return { draw };
}
