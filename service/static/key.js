// The API key prompt: shown when the service answers 401, the key kept in this tab (see api.js).

import { auth, forgetKey, saveKey, storedKey } from "./api.js";
import { $ } from "./dom.js";

// `sent`: the key the refused request carried (none: the service wants one)
function askForKey(reason, sent) {
  const panel = $("key-panel");
  if (sent || panel.hidden) {
    $("key-reason").textContent = sent ? `The key was refused: ${reason}` : "This service needs an API key to search.";
  }
  forgetKey();
  $("forget-key").hidden = true;
  const wasHidden = panel.hidden;
  panel.hidden = false;
  if (wasHidden) $("key-input").focus();
}

// `onKey`: what to do once a key is entered (ask the service again)
export function setupKey(onKey) {
  auth.onUnauthorized = askForKey;
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    saveKey(key);
    $("key-input").value = "";
    $("key-panel").hidden = true;
    $("forget-key").hidden = false;
    onKey();
  });
  $("forget-key").addEventListener("click", () => askForKey("", null));
  $("forget-key").hidden = !storedKey();
}
