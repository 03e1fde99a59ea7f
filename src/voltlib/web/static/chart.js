// A small SVG line chart (no library): one series of (time, value) points, with its range labelled.
import { s } from "./dom.js";

const W = 720, H = 200, PAD = 36;

export function lineChart(points, { label, unit }) {
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${label}, ${points.length} samples` });
  if (points.length < 2) return svg;
  const ts = points.map((p) => p[0]), vs = points.map((p) => p[1]);
  const t0 = Math.min(...ts), t1 = Math.max(...ts), v0 = Math.min(0, ...vs), v1 = Math.max(...vs) || 1;
  const x = (t) => PAD + ((t - t0) / (t1 - t0 || 1)) * (W - 2 * PAD);
  const y = (v) => H - PAD - ((v - v0) / (v1 - v0 || 1)) * (H - 2 * PAD);
  const d = points.map(([t, v], i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  svg.append(
    s("path", { d: `M${PAD},${H - PAD} H${W - PAD}`, stroke: "#d1d9e0", fill: "none" }),
    s("path", { d, stroke: "#0969da", "stroke-width": 2, fill: "none" }),
    s("text", { x: 4, y: PAD - 8, text: `${v1.toFixed(1)} ${unit}`, "font-size": 12, fill: "#59636e" }),
    s("text", { x: 4, y: H - PAD + 4, text: `${v0.toFixed(1)}`, "font-size": 12, fill: "#59636e" }),
    s("text", { x: PAD, y: H - 8, text: new Date(t0).toLocaleTimeString(), "font-size": 12, fill: "#59636e" }),
    s("text", { x: W - PAD, y: H - 8, "text-anchor": "end", text: new Date(t1).toLocaleTimeString(),
      "font-size": 12, fill: "#59636e" }));
  return svg;
}

// Power (kW) from MeterValues: Power.Active.Import when sent, else derived from the energy register.
export function powerSeries(meterValues, connectorId) {
  const rows = meterValues.filter((m) => m.connector_id === connectorId)
    .map((m) => [Date.parse(m.timestamp), m.sampled_value]).sort((a, b) => a[0] - b[0]);
  const power = [], energy = [];
  for (const [t, samples] of rows) {
    for (const sv of samples) {
      const measurand = sv.measurand || "Energy.Active.Import.Register";
      const value = Number(sv.value);
      const scale = (sv.unit || "").startsWith("k") ? 1000 : 1;
      if (measurand === "Power.Active.Import") power.push([t, (value * scale) / 1000]);
      if (measurand === "Energy.Active.Import.Register") energy.push([t, value * scale]);
    }
  }
  if (power.length >= 2) return power;
  const derived = [];
  for (let i = 1; i < energy.length; i++) {
    const hours = (energy[i][0] - energy[i - 1][0]) / 3.6e6;
    if (hours > 0) derived.push([energy[i][0], (energy[i][1] - energy[i - 1][1]) / 1000 / hours]);
  }
  return derived;
}
