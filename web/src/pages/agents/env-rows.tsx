import { useId } from "react";

export interface EnvRow {
  name: string;
  value: string;
}

/** Name/value rows for environment variables: add, edit, remove. */
export function EnvRows(props: { rows: EnvRow[]; onChange: (rows: EnvRow[]) => void; legend: string }) {
  const id = useId();
  const set = (index: number, row: EnvRow) =>
    props.onChange(props.rows.map((old, i) => (i === index ? row : old)));
  return (
    <fieldset className="env-rows">
      <legend>{props.legend}</legend>
      {props.rows.map((row, index) => (
        // Rows have no identity but their place; they are only added at the end or removed.
        // biome-ignore lint/suspicious/noArrayIndexKey: see above
        <div className="env-row" key={index}>
          <label htmlFor={`${id}-n${index}`} className="sr-only">
            Variable {index + 1} name
          </label>
          <input
            id={`${id}-n${index}`}
            placeholder="NAME"
            value={row.name}
            onChange={(e) => set(index, { ...row, name: e.target.value })}
          />
          <label htmlFor={`${id}-v${index}`} className="sr-only">
            Variable {index + 1} value
          </label>
          <input
            id={`${id}-v${index}`}
            placeholder="value"
            value={row.value}
            onChange={(e) => set(index, { ...row, value: e.target.value })}
          />
          <button type="button" onClick={() => props.onChange(props.rows.filter((_, i) => i !== index))}>
            Remove
          </button>
        </div>
      ))}
      <button type="button" onClick={() => props.onChange([...props.rows, { name: "", value: "" }])}>
        Add variable
      </button>
    </fieldset>
  );
}

/** The rows with a name, as the API's `env` record. */
export function envRecord(rows: EnvRow[]): Record<string, string> {
  return Object.fromEntries(rows.filter((row) => row.name.trim()).map((row) => [row.name.trim(), row.value]));
}
