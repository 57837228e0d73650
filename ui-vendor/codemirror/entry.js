// The only JS source of hookengine/ui/static/vendor/hook-editor.js (built by build.sh).
// The UI's modules use it as: import * as cm from "/ui/static/vendor/hook-editor.js"
import { basicSetup } from "codemirror";
import { EditorView, keymap } from "@codemirror/view";
import { EditorState, Prec } from "@codemirror/state";
import { completeFromList } from "@codemirror/autocomplete";
import { linter, lintGutter, setDiagnostics } from "@codemirror/lint";
import { python, pythonLanguage } from "@codemirror/lang-python";
import { json, jsonParseLinter } from "@codemirror/lang-json";

// Extensions every editor shares. The page's CSP (style-src 'self' 'nonce-...') blocks the
// <style> CodeMirror injects unless it carries the nonce, so a missing one is an error here
// rather than an editor that silently renders without its styles.
function common(options) {
  const { nonce, onChange, onSave, onRun, label } = options;
  if (typeof nonce !== "string" || nonce === "") {
    throw new TypeError("hook-editor: options.nonce (the page's CSP style nonce) is required");
  }
  const keys = [];
  if (typeof onSave === "function") {
    keys.push({ key: "Mod-s", preventDefault: true, run: () => { onSave(); return true; } });
  }
  if (typeof onRun === "function") {
    keys.push({ key: "Mod-Enter", preventDefault: true, run: () => { onRun(); return true; } });
  }
  const extensions = [
    basicSetup,
    // Highest precedence: basicSetup binds Mod-Enter (insertBlankLine) itself.
    Prec.highest(keymap.of(keys)),
    EditorView.cspNonce.of(nonce),
    lintGutter(),
  ];
  if (typeof onChange === "function") {
    extensions.push(EditorView.updateListener.of((update) => {
      if (update.docChanged) onChange(update.state.doc.toString());
    }));
  }
  if (typeof label === "string" && label !== "") {
    extensions.push(EditorView.contentAttributes.of({ "aria-label": label }));
  }
  return extensions;
}

function create(parent, doc, extensions) {
  return new EditorView({
    parent,
    state: EditorState.create({ doc: doc == null ? "" : String(doc), extensions }),
  });
}

// options: {nonce, onChange(text), onSave(), onRun(), words: [string], label}
export function pythonEditor(parent, doc, options = {}) {
  const extensions = [...common(options), python()];
  const words = Array.isArray(options.words)
    ? [...new Set(options.words.filter((w) => typeof w === "string" && w !== ""))]
    : [];
  if (words.length) {
    // Added as language data, so it is offered next to Python's own completions
    // (an autocompletion({override}) would replace them).
    extensions.push(pythonLanguage.data.of({ autocomplete: completeFromList(words) }));
  }
  return create(parent, doc, extensions);
}

// options: {nonce, onChange(text), onRun(), label, readOnly}
export function jsonEditor(parent, doc, options = {}) {
  const extensions = [...common({ ...options, onSave: undefined }), json(), linter(jsonParseLinter())];
  if (options.readOnly) {
    extensions.push(EditorState.readOnly.of(true),
      EditorView.contentAttributes.of({ "aria-readonly": "true" }));
  }
  return create(parent, doc, extensions);
}

function clamp(n, low, high) {
  return Math.min(Math.max(n, low), high);
}

// problems: [{line (1-based), column (1-based; null = whole line), end_column (1-based,
// exclusive, like Python's SyntaxError.end_offset), message, severity ("error" | "warning")}].
// Lines and columns outside the document are clamped to it. [] clears.
export function showProblems(view, problems) {
  const doc = view.state.doc;
  const diagnostics = (problems || []).map((p) => {
    const lineNo = clamp(Math.trunc(Number(p.line)) || 1, 1, doc.lines);
    const line = doc.line(lineNo);
    let from = line.from;
    let to = line.to;
    const column = Math.trunc(Number(p.column));
    if (p.column != null && column >= 1) {
      from = line.from + clamp(column - 1, 0, line.length);
      const end = Math.trunc(Number(p.end_column));
      if (p.end_column != null && end > column) {
        to = line.from + clamp(end - 1, 0, line.length);
      } else {
        // No end: the word at the column, or one character.
        const word = view.state.wordAt(from);
        to = word && word.from === from ? word.to : Math.min(from + 1, line.to);
      }
    }
    const diagnostic = {
      from,
      to,
      severity: p.severity === "warning" ? "warning" : "error",
      message: String(p.message == null ? "" : p.message),
    };
    if (typeof p.source === "string" && p.source !== "") diagnostic.source = p.source;
    return diagnostic;
  });
  view.dispatch(setDiagnostics(view.state, diagnostics));
}

export function getText(view) {
  return view.state.doc.toString();
}

// Replaces the whole document (onChange is called, as for any change).
export function setText(view, text) {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text == null ? "" : String(text) } });
}

export function focus(view) {
  view.focus();
}
