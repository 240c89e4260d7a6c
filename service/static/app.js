// simsearch search page: the controls, the modes, the collections, and the search itself. Talks to its own
// origin only; every text from the index or the API is put in the page as text (see dom.js).

import { api } from "./api.js";
import { collectionPath, fillPicker, pickedCollection, rememberCollection, renderCollection, renderNoCollection } from "./collection.js";
import { $, el, formError, setStatus, showError } from "./dom.js";
import { setupKey } from "./key.js";
import { CJK, queryTerms, renderColumn, summary, termPattern } from "./results.js";
import { setupSimilarity } from "./similarity.js";

const MODES = [
  ["dense", "bi-encoder"],
  ["lexical", "BM25"],
  ["hybrid", "dense + BM25, fused"],
  ["rerank", "cross-encoder re-scores"],
  ["cur", "CUR approximation"],
];
const CROSS_MODES = new Set(["rerank", "cur"]);

// ---- tabs ---------------------------------------------------------------------------------------------
function setupTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      next.focus();
      select(next);
    });
  });
}

// ---- modes --------------------------------------------------------------------------------------------
const modeState = new Map(MODES.map(([m]) => [m, { available: m === "dense", reason: "checking…" }]));

function renderModes() {
  const list = $("mode-list");
  const checked = document.querySelector('input[name="mode"]:checked')?.value || "dense";
  list.replaceChildren();
  for (const [mode, what] of MODES) {
    const state = modeState.get(mode);
    const reasonId = `mode-${mode}-reason`;
    const input = el("input", {
      type: "radio",
      name: "mode",
      value: mode,
      id: `mode-${mode}`,
      disabled: !state.available,
      "aria-describedby": state.available ? null : reasonId,
    });
    input.checked = mode === checked && state.available;
    list.append(
      el(
        "div",
        { class: state.available ? "mode" : "mode unavailable" },
        el("label", { for: input.id }, input, mode, " ", el("span", { class: "what" }, `(${what})`)),
        el("span", { class: "reason", id: reasonId }, state.available ? "" : state.reason || "not available"),
      ),
    );
  }
  if (!document.querySelector('input[name="mode"]:checked')) $("mode-dense").checked = true;

  const second = $("mode-b");
  const previous = second.value;
  second.replaceChildren();
  for (const [mode] of MODES) {
    const state = modeState.get(mode);
    second.append(el("option", { value: mode, disabled: !state.available }, state.available ? mode : `${mode} (unavailable)`));
  }
  const preferred = [previous, "rerank", "hybrid", "lexical", "dense"].find((m) => m && modeState.get(m)?.available);
  second.value = preferred || "dense";
  updateControls();
}

function currentMode() {
  return document.querySelector('input[name="mode"]:checked')?.value || "dense";
}

function updateControls() {
  const sideBySide = $("side-by-side").checked;
  $("mode-b").disabled = !sideBySide;
  const used = new Set([currentMode(), ...(sideBySide ? [$("mode-b").value] : [])]);
  $("k-r").disabled = ![...used].some((m) => CROSS_MODES.has(m));
  $("candidates").disabled = !used.has("rerank");
}

// ---- the collections --------------------------------------------------------------------------------------
let shown = 0; // counts the collections asked for: only the last one asked is shown
let searchController = null;

function modesUnknown(reason) {
  for (const [mode] of MODES) if (mode !== "dense") modeState.set(mode, { available: false, reason });
  renderModes();
}

// the picked collection's modes and description; a search that had results runs again in it
async function showCollection(name, { rerun = false } = {}) {
  const mine = ++shown;
  document.body.dataset.ready = "false";
  try {
    const [modes, info] = await Promise.all([api(collectionPath(name, "modes")), api(collectionPath(name))]);
    if (mine !== shown) return;
    for (const m of modes.modes) modeState.set(m.mode, { available: m.available, reason: m.reason });
    renderModes();
    renderCollection(info);
    showError($("search-error"), null);
    document.body.dataset.collection = name;
    document.body.dataset.ready = "true"; // the modes and the description are in (tests wait for this)
    if (rerun) runSearch();
  } catch (err) {
    if (mine !== shown) return;
    if (err.status !== 401) showError($("search-error"), err);
    renderNoCollection(err.status === 401 ? "waiting for the API key" : `collection ${name}: ${err.message}`);
    modesUnknown(err.status === 401 ? "waiting for the API key" : "unknown: the service did not say");
  }
}

async function loadCollections() {
  let ready;
  try {
    const response = await fetch("/ready", { cache: "no-store", headers: { Accept: "application/json" } });
    ready = await response.json();
  } catch (err) {
    $("index-badge").textContent = `the service did not answer (${err.message})`;
    setTimeout(loadCollections, 3000);
    return;
  }
  if (!ready.ready) {
    $("index-badge").textContent = `not ready: ${ready.reason || "loading"}; trying again…`;
    setTimeout(loadCollections, 2000);
    return;
  }
  const cross = $("sim-cross");
  cross.disabled = !ready.cross_model;
  $("sim-cross-reason").textContent = ready.cross_model ? "" : "no cross-encoder is loaded (SIMSEARCH_CROSS_MODEL)";
  let list;
  try {
    list = await api("/collections");
  } catch (err) {
    if (err.status !== 401) showError($("search-error"), err);
    renderNoCollection(err.status === 401 ? "waiting for the API key" : "the collections could not be listed");
    modesUnknown(err.status === 401 ? "waiting for the API key" : "unknown: the service did not say");
    return;
  }
  const { choice, refused } = fillPicker(list.collections, ready.index);
  if (refused) setStatus($("search-status"), `There is no collection ${refused} this key may search: showing ${choice || "none"}.`, false);
  if (!choice) {
    renderNoCollection(list.collections.length ? "no collection is ready" : "this key may read no collection");
    modesUnknown("no collection to search");
    return;
  }
  await showCollection(choice);
}

function setupCollections() {
  $("collection").addEventListener("change", () => {
    const name = pickedCollection();
    rememberCollection(name);
    searchController?.abort();
    const searched = $("results").childElementCount > 0 && $("q").value.trim() !== "";
    if (!searched) $("results").replaceChildren();
    setStatus($("search-status"), searched ? `Collection ${name}: the same search again…` : `Type a query to search ${name}.`, false);
    showCollection(name, { rerun: searched });
  });
}

function readSearch() {
  const query = $("q").value.trim();
  if (!query) throw formError("type something to search for");
  const k = Number($("k").value || 10);
  if (!Number.isInteger(k) || k < 1 || k > 100) throw formError("k: a whole number from 1 to 100");
  const kr = $("k-r").value.trim() ? Number($("k-r").value) : null;
  if (kr !== null && (!Number.isInteger(kr) || kr < 1)) throw formError("k_r: a whole number of at least 1");
  let filter = null;
  const filterText = $("filter").value.trim();
  if (filterText) {
    try {
      filter = JSON.parse(filterText);
    } catch (err) {
      throw formError(`filter: not valid JSON (${err.message})`);
    }
    if (typeof filter !== "object" || Array.isArray(filter) || filter === null) throw formError('filter: a JSON object such as {"year": {"$gte": 2020}}');
  }
  return { query, k, kr, filter, candidates: $("candidates").value };
}

function requestFor(form, mode) {
  const body = { query: form.query, k: form.k, mode };
  if (CROSS_MODES.has(mode) && form.kr !== null) body.k_r = form.kr;
  if (mode === "rerank") body.candidates = form.candidates;
  if (form.filter) body.filter = form.filter;
  return body;
}

async function runSearch() {
  const errorBox = $("search-error");
  const status = $("search-status");
  const results = $("results");
  let form;
  try {
    form = readSearch();
  } catch (err) {
    showError(errorBox, err);
    return;
  }
  const collection = pickedCollection();
  if (!collection) {
    showError(errorBox, formError("there is no collection to search: see the panel"));
    return;
  }
  showError(errorBox, null);
  const modes = [currentMode()];
  if ($("side-by-side").checked) modes.push($("mode-b").value);
  searchController?.abort();
  const controller = new AbortController();
  searchController = controller;
  results.setAttribute("aria-busy", "true");
  setStatus(status, modes.length > 1 ? `Searching (${modes.join(" and ")})…` : "Searching…", true);

  const outcomes = await Promise.all(
    modes.map((mode) =>
      api(collectionPath(collection, "search"), { method: "POST", body: requestFor(form, mode), signal: controller.signal }).then(
        (result) => ({ result }),
        (error) => ({ error }),
      ),
    ),
  );
  if (controller !== searchController) return; // a newer search replaced this one
  results.setAttribute("aria-busy", "false");
  if (outcomes.some((o) => o.error?.name === "AbortError")) return;

  // the query's words, and for Chinese, Japanese or Korean text the collection analyser's terms (its words are
  // not separated by spaces, so the page cannot find them by itself)
  const analysed = outcomes.flatMap((o) => o.result?.terms || []).filter((t) => CJK.test(t));
  const pattern = termPattern([...queryTerms(form.query).filter((w) => !CJK.test(w)), ...analysed]);
  if (modes.length === 1) {
    const [outcome] = outcomes;
    if (outcome.error) {
      // keep the previous results on screen; say why this search has none
      showError(errorBox, outcome.error);
      setStatus(status, "The search failed: see the message above.", false);
      return;
    }
    results.replaceChildren(el("div", { class: "columns" }, renderColumn(modes[0], outcome, pattern)));
    setStatus(status, `${modes[0]}: ${summary(outcome.result)}`, false);
    return;
  }
  const [a, b] = outcomes;
  const ranks = (outcome) => new Map(outcome.result.hits.map((h, i) => [h.id, i + 1]));
  const both = Boolean(a.result && b.result);
  const columns = el(
    "div",
    { class: "columns two" },
    renderColumn(modes[0], a, pattern, both ? { side: "left", ranks: ranks(b) } : null),
    renderColumn(modes[1], b, pattern, both ? { side: "right", ranks: ranks(a) } : null),
  );
  const legend = el(
    "p",
    { class: "legend" },
    `Marks on the ${modes[1]} results: how each document moved against ${modes[0]} (↑ up, ↓ down, = same rank, ` +
      `new: not in ${modes[0]}); out: dropped by ${modes[1]}.`,
  );
  results.replaceChildren(legend, columns);
  const failed = outcomes.filter((o) => o.error).length;
  setStatus(status, failed ? `${failed} of 2 searches failed: see the column.` : `${modes[0]} and ${modes[1]} side by side.`, false);
}

function setupSearch() {
  const form = $("search-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch();
  });
  $("filter").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      runSearch();
    }
  });
  $("mode-list").addEventListener("change", updateControls);
  $("mode-list").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.name === "mode") {
      event.preventDefault();
      runSearch();
    }
  });
  $("side-by-side").addEventListener("change", updateControls);
  $("mode-b").addEventListener("change", updateControls);
  // a number input or select takes Enter as "search" too, as the query box does
  for (const id of ["collection", "k", "k-r", "candidates", "mode-b"]) {
    $(id).addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        runSearch();
      }
    });
  }
}

// ---- start ---------------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  setupKey(() => loadCollections().then(() => $("q").focus()));
  setupTabs();
  setupSearch();
  setupCollections();
  setupSimilarity();
  renderModes();
  loadCollections();
  $("q").focus();
});
