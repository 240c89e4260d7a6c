// The "Compare sentences" tab: POST /similarity, one sentence against several.

import { api } from "./api.js";
import { $, el, formError, setStatus, showError } from "./dom.js";

export function setupSimilarity() {
  let controller = null;
  $("similarity-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const errorBox = $("sim-error");
    const status = $("sim-status");
    const results = $("sim-results");
    const source = $("sim-source").value.trim();
    const targets = $("sim-targets").value.split("\n").map((t) => t.trim()).filter(Boolean);
    if (!source || !targets.length) {
      showError(errorBox, formError("write a sentence and at least one to compare it with"));
      return;
    }
    const model = document.querySelector('input[name="sim-model"]:checked').value;
    showError(errorBox, null);
    controller?.abort();
    const mine = new AbortController();
    controller = mine;
    results.setAttribute("aria-busy", "true");
    setStatus(status, "Scoring…", true);
    let answer;
    try {
      answer = await api("/similarity", { method: "POST", body: { source, targets, model }, signal: mine.signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      if (mine === controller) {
        results.setAttribute("aria-busy", "false");
        showError(errorBox, err);
        setStatus(status, "Scoring failed: see the message above.", false);
      }
      return;
    }
    if (mine !== controller) return;
    results.setAttribute("aria-busy", "false");
    const best = Math.max(...answer.scores);
    const cut = new Set(answer.truncated);
    const body = el("tbody");
    answer.scores.forEach((score, i) => {
      const row = el(
        "tr",
        { class: score === best ? "best" : null },
        el("td", { class: "num" }, String(i + 1)),
        el("td", {}, targets[i], cut.has(i) ? el("span", { class: "flag", title: "cut to the model's window" }, " (truncated)") : null),
        el("td", { class: "num" }, score.toFixed(4)),
      );
      body.append(row);
    });
    const table = el(
      "table",
      { class: "scores" },
      el("caption", { class: "visually-hidden" }, `Scores against: ${source}`),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "#"), el("th", { scope: "col" }, "Sentence"), el("th", { scope: "col" }, `Score (${answer.model})`))),
      body,
    );
    results.replaceChildren(table);
    setStatus(status, `${answer.scores.length} scores by the ${answer.model === "bi" ? "bi-encoder" : "cross-encoder"} · ${answer.took_ms.toFixed(1)} ms`, false);
  });
}
