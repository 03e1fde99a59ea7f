// Small DOM and fetch helpers. Text always goes in as text nodes (never HTML), so ids from charge
// points cannot inject markup.
export function h(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "circle", "a", "image", "rect", "title", "text", "path"].includes(tag) && attrs.svg;
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "svg" || v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const s = (tag, attrs = {}, ...children) => h(tag, { ...attrs, svg: true }, ...children);

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export async function api(path, { method = "GET", body } = {}) {
  return (await request(path, method, body)).data;
}

// Every row of a paged list: the API answers at most 1,000 rows a page, the next page's address in
// a `Link: <…>; rel="next"` header (docs/operations.md, "Lists and pages"). `maxPages` bounds it.
export async function apiAll(path, { maxPages = 200 } = {}) {
  const rows = [];
  let next = path;
  for (let pages = 0; next && pages < maxPages; pages += 1) {
    const { data, response } = await request(next, "GET");
    rows.push(...data);
    next = nextLink(response.headers.get("Link"));
  }
  return rows;
}

// The target of rel="next" in an RFC 8288 Link header, or null. A URL may hold commas, never ">".
export function nextLink(header) {
  for (const [, target, params] of (header || "").matchAll(/<([^>]*)>([^<]*)/g)) {
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(params);
    if (rel && (rel[1] ?? rel[2]).toLowerCase().split(/\s+/).includes("next")) return target;
  }
  return null;
}

async function request(path, method, body) {
  const init = { method, credentials: "same-origin", headers: { "X-Requested-With": "voltlib" } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return { data, response };
}

export function table(columns, rows, empty = "Nothing yet.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row)))))));
}

export function when(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString();
}
