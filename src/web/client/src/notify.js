// Two live regions under the top bar: errors (role=alert, read at once) and information
// (role=status, read when the reader is idle). Each keeps its latest message until dismissed.
import { $, fill, h } from "./dom.js";
import { describe } from "./errors.js";

const INFO_SHOWN_MS = 10_000;
let infoTimer = null;

function show(region, text, kind) {
  const el = $(region);
  // Information fades after a while; errors stay until dismissed or replaced.
  if (kind === "info") {
    clearTimeout(infoTimer);
    infoTimer = setTimeout(() => fill(el), INFO_SHOWN_MS);
  }
  fill(
    el,
    h(
      "div",
      { class: `notice ${kind}` },
      h("p", {}, text),
      h("button", { type: "button", class: "dismiss", onclick: () => fill(el) }, "Dismiss"),
    ),
  );
}

export const showError = (err) => show("#alert", describe(err), "error");
export const showAlert = (text) => show("#alert", text, "error");
export const showInfo = (text) => show("#info", text, "info");
export function clearNotices() {
  fill($("#alert"));
  fill($("#info"));
}

/**
 * Marks the fields a validation_failed error names (aria-invalid + the message under the field)
 * and clears the marks of the others. Returns whether any field was marked.
 */
export function markFields(form, err) {
  let marked = false;
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".field-error")) fill(el);
  for (const f of err?.errors || []) {
    const input = form.elements[f.field];
    const out = form.querySelector(`[data-error-for="${f.field}"]`);
    if (!input || !out) continue;
    input.setAttribute("aria-invalid", "true");
    fill(out, `${f.field} ${f.message}`);
    marked = true;
  }
  return marked;
}

/** Shows an error: on the form's fields when it names them, in the alert region always. */
export function formError(form, err) {
  markFields(form, err);
  showError(err);
}
