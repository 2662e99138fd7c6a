/** A value longer than this shows its start: a transcript stays quick to read and to draw. */
const maxChars = 4000;

function cut(text: string): string {
  return text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
}

/** A value as it reads best: a string as itself (its newlines real), anything else as indented JSON. */
function shown(value: unknown): string {
  return cut(typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

/** The command line a shell tool runs, when the arguments hold one. */
function commandOf(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value) && value.every((part) => typeof part === "string")) return value.join(" ");
  return undefined;
}

/**
 * A tool call's arguments (or a tool's result) made readable: a command as a code block, each
 * other argument by name with its text as written (file contents keep their lines), never a JSON
 * string with escaped newlines.
 */
export function ToolArguments(props: { value: unknown }) {
  const { value } = props;
  if (value === null || typeof value !== "object" || Array.isArray(value))
    return <pre className="tool-value">{shown(value)}</pre>;
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return null;
  return (
    <dl className="tool-args">
      {entries.map(([name, arg]) => {
        const command = name === "command" || name === "cmd" ? commandOf(arg) : undefined;
        return (
          <div key={name}>
            <dt className="meta">{name}</dt>
            <dd>
              {command !== undefined ? (
                <pre className="tool-command">
                  <code>{`$ ${cut(command)}`}</code>
                </pre>
              ) : (
                <pre className="tool-value">{shown(arg)}</pre>
              )}
            </dd>
          </div>
        );
      })}
    </dl>
  );
}
