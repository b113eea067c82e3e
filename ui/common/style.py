"""Layout fixes shared by every screen (the full app and presenter mode), found by driving each tab in Chromium
at desktop and phone widths (tests/browser/test_layout_browser.py checks them)."""

LAYOUT_CSS = """
/* Buttons next to taller widgets (a labelled dropdown, a growing message box) keep a button's height
   instead of stretching to the row's: Load/Unload/Send/Stop were 90-260 px tall. */
.input-row > button, .button-row > button { align-self: flex-end; flex-grow: 0; height: auto; min-height: 42px; }
.input-row > button { margin-bottom: var(--block-padding, 8px); }
/* A dropdown's text stops before its arrow (it ran under it) and ends with an ellipsis. */
.secondary-wrap input[role=combobox] { text-overflow: ellipsis; padding-right: 28px !important; min-width: 0; }
.secondary-wrap { min-width: 0; }
.secondary-wrap .icon-wrap { flex-shrink: 0; }
/* Table headers break between words, never inside one ("referenc e"). */
th, th .header, th .header-content, th span.text { word-break: normal !important;
  overflow-wrap: normal !important; hyphens: none; }
/* A table without data and without real headers shows nothing instead of Gradio's "1 2 3" placeholder. */
table:not(:has(tbody tr)):has(th[title="1"]) thead { display: none; }
/* The versions of a branched conversation: ◀ label ▶ on one line. */
.versions-row { align-items: center; flex-wrap: nowrap; }
.versions-row > button { white-space: nowrap; flex-grow: 0; }
.versions-row > .block { text-align: center; }
/* Toasts at the bottom right, at most the newest three: they stacked over the model picker at the top. */
.toast-wrap { top: auto !important; bottom: var(--size-4, 16px); }
.toast-wrap > :nth-last-child(n+4) { display: none; }
/* A chart (gr.LinePlot / ScatterPlot / BarPlot) fills what its label leaves of the block: the chart took the
   block's whole height under the label, so its bottom (the colour legend, all but its title) was cut off. */
.block:has(> .vega-embed) { display: flex; flex-direction: column; }
.block > .vega-embed { flex: 1 1 0; min-height: 0; height: auto !important; }
/* RANGE_NOTE_HEAD's note under a field whose typed number was out of its range. */
.range-note { color: var(--error-text-color, #b91c1c); font-size: var(--text-sm, 0.85em); margin-top: 4px; }
"""

# A number typed into a bounded field (a parameter slider's box, a gr.Number with minimum / maximum) outside its
# range is set by Gradio to the nearest bound without a word, and the request ran with it. This says so under the
# field, in the browser's own words ("Value must be greater than or equal to 0."), read before Gradio changes the
# value (a capturing listener runs first); the note goes away after a while or at the next valid value.
RANGE_NOTE_HEAD = """<script>
document.addEventListener("change", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || box.type !== "number") return;
  const block = box.closest(".block");
  if (!block) return;
  let note = block.querySelector(":scope .range-note");
  const out = box.validity.rangeUnderflow || box.validity.rangeOverflow;
  if (!out) { note?.remove(); return; }
  if (!note) {
    note = Object.assign(document.createElement("div"), {className: "range-note", role: "alert"});
    block.append(note);
  }
  note.textContent = box.validationMessage;
  clearTimeout(note.hideTimer);
  note.hideTimer = setTimeout(() => note.remove(), 8000);
}, true);
</script>"""
