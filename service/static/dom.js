// Building the page from data: every text goes in as a text node, never parsed as HTML.

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child); // a string becomes a text node
  }
  return node;
}

const STATUS_WORDS = {
  0: "No answer",
  400: "Bad request",
  401: "API key needed",
  403: "Not allowed",
  404: "Not found",
  408: "Too slow",
  409: "Conflict",
  413: "Too large",
  422: "Not accepted",
  429: "The service is busy",
  503: "The service is not available",
};

export function showError(box, err) {
  box.replaceChildren();
  if (!err) {
    box.hidden = true;
    return;
  }
  const words = STATUS_WORDS[err.status] || "Error";
  const title = err.title || (err.status ? `${words} (HTTP ${err.status})` : words);
  let message = err.message;
  if (err.retryAfter) message += ` — try again in ${err.retryAfter} s.`;
  box.append(el("strong", {}, title), el("span", { class: "message" }, message));
  box.hidden = false;
}

export function setStatus(line, text, busy) {
  line.classList.toggle("busy", Boolean(busy));
  line.querySelector(".text").textContent = text;
}

export function formError(message) {
  return Object.assign(new Error(message), { title: "Check the form" });
}
