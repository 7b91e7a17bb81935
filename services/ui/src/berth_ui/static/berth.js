/* Berth web UI: small enhancements only; every page works without this file.
   - "Copy" buttons put a command on the clipboard and say so to screen readers.
   - A typed confirmation enables its form's submit button only when the text matches. */
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const text = button.getAttribute("data-copy");
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const label = button.textContent;
  button.textContent = "Copied";
  button.setAttribute("aria-live", "polite");
  setTimeout(() => { button.textContent = label; }, 1500);
});
for (const input of document.querySelectorAll("[data-confirm]")) {
  const submit = input.form.querySelector("button[type=submit]");
  const update = () => { submit.disabled = input.value.trim() !== input.getAttribute("data-confirm"); };
  input.addEventListener("input", update);
  update();
}
