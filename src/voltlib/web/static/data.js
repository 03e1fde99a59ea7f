// Shared fetch helpers of the dashboard pages: the public GBFS files and the list of cities.
import { ApiError } from "./dom.js";

export async function gbfs(city, feed) {
  const response = await fetch(`/gbfs/${encodeURIComponent(city)}/${feed}.json`, { credentials: "same-origin" });
  if (!response.ok) throw new ApiError(response.status, null);
  return (await response.json()).data;
}

export async function cities() {
  const response = await fetch("/gbfs/manifest.json");
  return (await response.json()).data.datasets.map((d) => d.system_id);
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}
