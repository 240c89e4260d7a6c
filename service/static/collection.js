// The collection picker and what the page says about the picked collection: GET /collections lists the ones
// this key may read, GET /collections/{name} describes one. The pick is kept in the URL (?collection=name), so
// a reload or a shared link opens the same collection.

import { $, el } from "./dom.js";

const PARAM = "collection";

const documents = (n) => `${n} document${n === 1 ? "" : "s"}`;

// the path of the picked collection's routes: collectionPath("tiny", "search") is /collections/tiny/search
export function collectionPath(name, route = "") {
  return `/collections/${encodeURIComponent(name)}${route ? `/${route}` : ""}`;
}

export function pickedCollection() {
  return $("collection").value || null;
}

export function rememberCollection(name) {
  const url = new URL(location.href);
  if (name) url.searchParams.set(PARAM, name);
  else url.searchParams.delete(PARAM);
  history.replaceState(null, "", url);
}

// Fills the picker; returns the collection to show (the URL's, else the service's default, else the first
// ready one; null: none is ready) and the URL's choice when it cannot be shown.
export function fillPicker(collections, defaultName) {
  const select = $("collection");
  select.replaceChildren();
  for (const c of collections) {
    const ready = c.state === "ready";
    const text = `${c.name} (${ready ? documents(c.documents) : "unavailable"})`;
    select.append(el("option", { value: c.name, disabled: !ready, title: ready ? null : c.reason || "not available" }, text));
  }
  const names = collections.filter((c) => c.state === "ready").map((c) => c.name);
  const wanted = new URL(location.href).searchParams.get(PARAM);
  const choice = [wanted, defaultName, names[0]].find((n) => n && names.includes(n)) || null;
  select.value = choice || "";
  select.disabled = !names.length;
  if (wanted && wanted !== choice) rememberCollection(choice);
  return { choice, refused: wanted && wanted !== choice ? wanted : null };
}

// ---- the panel, the badge and the warnings ---------------------------------------------------------------
function paramsText(params) {
  const entries = Object.entries(params || {});
  return entries.length ? `(${entries.map(([k, v]) => `${k}=${v}`).join(", ")})` : "";
}

// a model by its registry name and folder name, never where it lives on the server
function modelText(model) {
  return model ? `${model.name} (folder ${model.folder})` : undefined;
}

// the start of a hash; the whole of it in the title
function hashCell(sha256) {
  return sha256 ? el("dd", { class: "hash", title: sha256 }, `${sha256.slice(0, 12)}…`) : null;
}

function fusionText(m, spec) {
  if (m.fusion) return m.fusion.method + (m.fusion.alpha != null ? ` α=${m.fusion.alpha}` : "");
  return spec?.fusion && spec.fusion !== "auto" ? `${spec.fusion.method} (fixed)` : "default";
}

export function renderCollection(info) {
  const m = info.manifest || {};
  const models = info.models || {};
  const live = info.live;
  const parts = [`collection ${info.name}`, documents(live.documents), models.cross ? "cross-encoder loaded" : "no cross-encoder"];
  $("index-badge").textContent = parts.join(" · ");

  const rows = [
    ["name", info.name],
    ["backend", info.backend],
    ["build", info.folder],
    ["model", modelText(models.bi)],
    ["model sha256", hashCell(models.bi?.sha256)],
    ["cross-encoder", models.cross ? modelText(models.cross) : "none"],
    ["cross sha256", hashCell(models.cross?.sha256)],
    ["dimension", m.model?.dimension],
    ["whitening", m.model?.whitening ? "yes" : "no"],
    ["documents", `${live.documents} (${live.build_documents} at build)`],
    ["index type", m.index ? [m.index.type, paramsText(m.index.params)].filter(Boolean).join(" ") : undefined],
    ["recall@10", m.index?.recall_at_10 ?? "not measured"],
    ["built", m.built_at ? new Date(m.built_at).toLocaleString() : undefined],
    ["build time", m.build_seconds !== undefined ? `${m.build_seconds.toFixed(1)} s` : undefined],
    ["lexical", m.lexical ? `${m.lexical.engine}, ${m.lexical.analyzer}` : "none"],
    ["fusion", fusionText(m, info.spec)],
    ["CUR", m.cur ? `${m.cur.k_i} anchor items, rank ${m.cur.rank}` : "none"],
  ];
  const list = $("manifest");
  list.replaceChildren();
  for (const [name, value] of rows) {
    if (value === undefined || value === null || value === "") continue;
    list.append(el("dt", {}, name), value instanceof Node ? value : el("dd", {}, String(value)));
  }
  renderWarnings(info.name, info.warnings || []);
}

function renderWarnings(name, warnings) {
  const box = $("collection-warnings");
  box.hidden = !warnings.length;
  $("warnings-title").textContent = `What may make results from ${name} worse`;
  $("warnings-list").replaceChildren(...warnings.map((w) => el("li", {}, w)));
}

// no collection to describe: the reason in the badge and the panel (and in the picker, when it is empty)
export function renderNoCollection(reason) {
  const select = $("collection");
  if (!select.options.length || !select.options[0].value) {
    select.replaceChildren(el("option", { value: "" }, reason));
    select.disabled = true;
  }
  $("index-badge").textContent = reason;
  $("manifest").replaceChildren(el("dt", {}, "status"), el("dd", {}, reason));
  renderWarnings("", []);
}
