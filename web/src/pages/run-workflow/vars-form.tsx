/** One row of the variables form; `fromWorkflow` rows came from the workflow's `vars:` defaults. */
export interface VarRow {
  key: number;
  name: string;
  value: string;
  fromWorkflow: boolean;
  edited: boolean;
}

let nextKey = 1;
export function newRow(name = "", value = "", fromWorkflow = false): VarRow {
  return { key: nextKey++, name, value, fromWorkflow, edited: false };
}

/**
 * Rows after the workflow's defaults changed: rows the user wrote or edited stay; untouched
 * default rows follow the workflow (added, updated, or gone with the variable).
 */
export function withDefaults(rows: VarRow[], defaults: Record<string, string>): VarRow[] {
  const kept = rows.filter((row) => !row.fromWorkflow || row.edited);
  const names = new Set(kept.map((row) => row.name));
  const fresh = Object.entries(defaults)
    .filter(([name]) => !names.has(name))
    .map(
      ([name, value]) =>
        rows.find((row) => row.fromWorkflow && row.name === name && row.value === value) ??
        newRow(name, value, true),
    );
  const next = [...fresh, ...kept];
  return next.length === rows.length && next.every((row, i) => row === rows[i]) ? rows : next;
}

/** The vars a run is submitted with: every named row (they override the workflow's defaults). */
export function varsOf(rows: VarRow[]): Record<string, string> {
  return Object.fromEntries(rows.filter((row) => row.name.trim()).map((row) => [row.name.trim(), row.value]));
}

export function VarsForm(props: {
  rows: VarRow[];
  onChange: (rows: VarRow[]) => void;
  /** Whether a row may be removed (default: every row). */
  removable?: (row: VarRow) => boolean;
}) {
  const update = (key: number, change: Partial<VarRow>) =>
    props.onChange(props.rows.map((row) => (row.key === key ? { ...row, ...change, edited: true } : row)));
  return (
    <fieldset className="vars">
      <legend>Variables</legend>
      {props.rows.length === 0 ? (
        <p className="hint">
          No variables: the workflow's <code>vars:</code> defaults appear here.
        </p>
      ) : (
        props.rows.map((row, index) => (
          <div className="var-row" key={row.key}>
            <label>
              <span className="visually-hidden">Name of variable {index + 1}</span>
              <input
                value={row.name}
                placeholder="NAME"
                spellCheck={false}
                autoCapitalize="off"
                onChange={(event) => update(row.key, { name: event.target.value })}
              />
            </label>
            <label>
              <span className="visually-hidden">Value of {row.name || `variable ${index + 1}`}</span>
              <input
                value={row.value}
                placeholder="value"
                spellCheck={false}
                onChange={(event) => update(row.key, { value: event.target.value })}
              />
            </label>
            {(props.removable?.(row) ?? true) && (
              <button
                type="button"
                aria-label={`Remove ${row.name || `variable ${index + 1}`}`}
                onClick={() => props.onChange(props.rows.filter((other) => other.key !== row.key))}
              >
                ×
              </button>
            )}
          </div>
        ))
      )}
      <button type="button" onClick={() => props.onChange([...props.rows, newRow()])}>
        Add variable
      </button>
    </fieldset>
  );
}
