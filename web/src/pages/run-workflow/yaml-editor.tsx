import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { yaml } from "@codemirror/lang-yaml";
import { defaultHighlightStyle, indentUnit, syntaxHighlighting } from "@codemirror/language";
import { type Diagnostic, linter, lintGutter } from "@codemirror/lint";
import { EditorState, Prec } from "@codemirror/state";
import { EditorView, type KeyBinding, keymap, lineNumbers } from "@codemirror/view";
import { useEffect, useRef } from "react";
import type { WorkflowProblem } from "./validation.js";

/** How long typing pauses before the text is checked: one request per pause, not per key. */
const validateDelayMs = 300;

export interface YamlEditorProps {
  initial: string;
  label: string;
  /** Checks the text; the problems are shown at their line and column. */
  check: (text: string) => Promise<WorkflowProblem[]>;
  onChange: (text: string) => void;
  onRun: () => void;
}

/** Where a problem's 1-based line and column fall in the text, kept inside it. */
function problemAt(state: EditorState, problem: WorkflowProblem): { from: number; to: number } {
  const line = state.doc.line(Math.min(Math.max(problem.line, 1), state.doc.lines));
  const from = Math.min(line.from + Math.max(problem.col - 1, 0), line.to);
  // The rest of the word (a misspelt key) is underlined; at a line's end, one character.
  const word = /^[^\s:]+/.exec(state.doc.sliceString(from, line.to))?.[0].length ?? 0;
  return { from, to: word > 0 ? from + word : Math.min(from + 1, state.doc.length) };
}

/**
 * Enter keeps the line's indentation, one level more after a `key:` or `- `: enough to write YAML
 * without the editor's full command set (which is not a dependency here).
 */
const newlineKeepingIndent: KeyBinding = {
  key: "Enter",
  run: (view) => {
    const { state } = view;
    const range = state.selection.main;
    const line = state.doc.lineAt(range.head);
    const before = line.text.slice(0, range.head - line.from);
    let indent = /^\s*/.exec(before)?.[0] ?? "";
    if (/:\s*(\|[-+]?|>[-+]?)?\s*$/.test(before) || /^\s*-\s*$/.test(before)) indent += "  ";
    view.dispatch(
      state.update(state.replaceSelection(`\n${indent}`), { scrollIntoView: true, userEvent: "input" }),
    );
    return true;
  },
};

/** A CodeMirror 6 YAML editor whose lint diagnostics are the server's validation. */
export function YamlEditor(props: YamlEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  // The editor is made once; the latest callbacks are read through refs.
  const latest = useRef(props);
  latest.current = props;

  useEffect(() => {
    const source = async (view: EditorView): Promise<Diagnostic[]> => {
      const state = view.state;
      const problems = await latest.current.check(state.doc.toString());
      return problems.map((problem) => ({
        ...problemAt(state, problem),
        severity: "error",
        message: problem.hint ? `${problem.message} (hint: ${problem.hint})` : problem.message,
      }));
    };
    const view = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: latest.current.initial,
        extensions: [
          lineNumbers(),
          lintGutter(),
          yaml(),
          syntaxHighlighting(defaultHighlightStyle),
          indentUnit.of("  "),
          EditorState.tabSize.of(2),
          linter(source, { delay: validateDelayMs }),
          Prec.highest(
            keymap.of([
              {
                key: "Mod-Enter",
                run: () => {
                  latest.current.onRun();
                  return true;
                },
              },
              newlineKeepingIndent,
            ]),
          ),
          // Undo and redo (Mod-Z, Mod-Shift-Z / Mod-Y) and the usual editing keys. Tab is left
          // to move focus on, so the page stays usable with the keyboard alone.
          history(),
          keymap.of([...defaultKeymap, ...historyKeymap]),
          EditorView.updateListener.of((update) => {
            if (update.docChanged) latest.current.onChange(update.state.doc.toString());
          }),
          EditorView.contentAttributes.of({ "aria-label": latest.current.label }),
        ],
      }),
    });
    // The editor lives as long as the page: its text is the state, not React's.
    return () => view.destroy();
  }, []);

  return <div className="yaml-editor" ref={host} />;
}
