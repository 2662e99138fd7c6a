/** `${NAME}`: how a workflow's text (a message, a call's input, an output, a group) names a variable. */
export const bracedVariable = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** `text` with each `${NAME}` replaced by its value; a name `vars` lacks stays as written, or becomes `unset`. */
export function fillVariables(text: string, vars: Readonly<Record<string, string>>, unset?: string): string {
  return text.replace(bracedVariable, (whole, name: string) => vars[name] ?? unset ?? whole);
}
