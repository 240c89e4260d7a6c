// Search results: hits with the query's words marked, and two modes side by side with what moved.

import { el, showError } from "./dom.js";

const SNIPPET_CHARS = 240;

export function queryTerms(query) {
  const words = query.toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
  return [...new Set(words.filter((w) => w.length > 1))];
}

export const CJK = /[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]/u;

// words match whole (never "cat" inside "concatenate"); terms in Chinese, Japanese or Korean script match
// where they stand, since no space separates the words of those texts (the terms come from the collection's
// analyser: jieba's words for a chinese collection)
export function termPattern(terms) {
  if (!terms.length) return null;
  const escape = (t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const words = terms.filter((t) => !CJK.test(t)).map(escape);
  const cjk = terms.filter((t) => CJK.test(t)).sort((a, b) => b.length - a.length).map(escape);
  const parts = [];
  if (words.length) parts.push(`(?<![\\p{L}\\p{N}])(?:${words.join("|")})(?![\\p{L}\\p{N}])`);
  if (cjk.length) parts.push(`(?:${cjk.join("|")})`);
  return new RegExp(parts.join("|"), "giu");
}

// appends `text` to `parent` as text nodes, with each query word wrapped in a <mark>
function appendHighlighted(parent, text, pattern) {
  if (!pattern) {
    parent.append(text);
    return;
  }
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) parent.append(text.slice(last, match.index));
    parent.append(el("mark", {}, match[0]));
    last = match.index + match[0].length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

// a window of the text around the first query word, cut at spaces
function snippet(text, pattern) {
  if (text.length <= SNIPPET_CHARS) return text;
  let start = 0;
  if (pattern) {
    pattern.lastIndex = 0;
    const first = pattern.exec(text);
    pattern.lastIndex = 0;
    if (first) start = Math.max(0, first.index - 60);
  }
  if (start > 0) {
    const space = text.indexOf(" ", start);
    start = space >= 0 && space < start + 20 ? space + 1 : start;
  }
  let end = Math.min(text.length, start + SNIPPET_CHARS);
  if (end < text.length) {
    const space = text.lastIndexOf(" ", end);
    end = space > start + SNIPPET_CHARS / 2 ? space : end;
  }
  return (start > 0 ? "…" : "") + text.slice(start, end) + (end < text.length ? "…" : "");
}

// how a document moved between the columns: on the right, relative to its rank on the left (or "new");
// on the left, only the documents the right column dropped ("out")
function moveMarker(rank, compare, id) {
  if (!compare) return null;
  const otherRank = compare.ranks.get(id);
  if (compare.side === "left") {
    return otherRank === undefined ? el("span", { class: "move out", title: "not in the right column" }, "out") : null;
  }
  if (otherRank === undefined) return el("span", { class: "move new", title: "not in the left column" }, "new");
  const d = otherRank - rank;
  if (d > 0) return el("span", { class: "move up", title: `up ${d} from rank ${otherRank}` }, `↑${d}`);
  if (d < 0) return el("span", { class: "move down", title: `down ${-d} from rank ${otherRank}` }, `↓${-d}`);
  return el("span", { class: "move same", title: "same rank" }, "=");
}

const CONTEXT_CHARS = 80;

// a long document's best passage in its place: a little of the text before and after it, the passage marked
function appendPassage(parent, hit, pattern) {
  const { index, start, end } = hit.passage;
  let from = Math.max(0, start - CONTEXT_CHARS);
  if (from > 0) from = Math.min(start, hit.text.indexOf(" ", from) + 1 || start);
  let to = Math.min(hit.text.length, end + CONTEXT_CHARS);
  if (to < hit.text.length) to = Math.max(end, hit.text.lastIndexOf(" ", to));
  if (from > 0) parent.append("…");
  parent.append(hit.text.slice(from, start));
  const marked = el("span", { class: "passage", title: `passage ${index + 1}: characters ${start}–${end} of ${hit.text.length}` });
  appendHighlighted(marked, hit.text.slice(start, end), pattern);
  parent.append(marked, hit.text.slice(end, to));
  if (to < hit.text.length) parent.append("…");
}

function renderHit(hit, rank, pattern, marker) {
  const title = el("h3", { class: hit.title ? "hit-title" : "hit-title untitled" });
  if (hit.title) appendHighlighted(title, hit.title, pattern);
  else title.textContent = "(untitled)";
  const text = el("p", { class: "snippet" });
  const p = hit.passage;
  if (p && (p.start > 0 || p.end < hit.text.length)) appendPassage(text, hit, pattern);
  else appendHighlighted(text, snippet(hit.text, pattern), pattern);
  const meta = hit.metadata && Object.keys(hit.metadata).length ? el("p", { class: "hit-meta" }, JSON.stringify(hit.metadata)) : null;
  return el(
    "li",
    { class: "hit", "data-id": hit.id },
    el("div", { class: "hit-head" }, el("span", { class: "rank" }, `${rank}.`), marker, title, el("span", { class: "score", title: "score" }, hit.score.toFixed(4))),
    el("div", { class: "hit-id" }, `id: ${hit.id}`),
    text,
    meta,
  );
}

export function summary(result) {
  const parts = [`${result.hits.length} hit${result.hits.length === 1 ? "" : "s"}`, `${result.took_ms.toFixed(1)} ms`, `cross-encoder calls: ${result.cross_encoder_calls}`];
  parts.push(result.truncated ? "query cut to the model's window" : "not truncated");
  return parts.join(" · ");
}

// one column: its heading, then its hits or its error. Side by side, `compare` says which side it is and holds
// the other side's ranks (null when the other side failed); alone, it is undefined
export function renderColumn(mode, outcome, pattern, compare) {
  const head = el("h2", { class: "column-head" }, mode);
  const column = el("section", { class: "column", "data-mode": mode, "aria-label": `${mode} results` }, head);
  if (outcome.error) {
    const box = el("div", { class: "error", role: "alert" });
    showError(box, outcome.error);
    column.append(box);
    return column;
  }
  const result = outcome.result;
  if (compare !== undefined) head.append(el("span", { class: "sub stats" }, summary(result)));
  if (!result.hits.length) {
    column.append(el("p", { class: "empty" }, "No documents matched."));
    return column;
  }
  const list = el("ol", { class: "hits" });
  result.hits.forEach((hit, i) => list.append(renderHit(hit, i + 1, pattern, moveMarker(i + 1, compare, hit.id))));
  column.append(list);
  return column;
}
