/**
 * The driver a step's pod runs (kube-step-job.ts): a POSIX shell script, so any image with
 * `/bin/sh` can run steps. It runs the attempt's commands one after the other (cmd.run's lines,
 * each `SHELL -c LINE`; shell.run's one), each word of each argv read from its own file of the
 * attempt's Secret (`argv.I.J`), and stops at the first that fails, as the process executor does
 * line by line. On exit it writes the termination message Kubernetes hands back in the pod's
 * status: a header saying which command failed, then `$RUNYARD_OUTPUT` when it fits.
 *
 * SIGTERM (the Job deleted, the kubelet stopping the pod) is passed on to the running command:
 * the shell is the pod's PID 1, which would otherwise ignore it.
 */

/** Kubernetes keeps at most 4096 bytes of a termination message; the header takes the rest. */
export const maxHandedBackOutputBytes = 3800;

/** The first line of the termination message: `runyard-step-result failed=I|- size=BYTES`. */
export const resultHeader = "runyard-step-result";

export const stepDriverScript = `# runyard's step driver: each command in turn until one fails; $RUNYARD_OUTPUT handed back on exit.
in=/runyard/in
out=/runyard/out/output
finish() {
  size=0
  if [ -f "$out" ] && [ ! -L "$out" ]; then size=$(($(wc -c < "$out"))); fi
  {
    printf '${resultHeader} failed=%s size=%s\\n' "$1" "$size"
    if [ "$size" -gt 0 ] && [ "$size" -le ${maxHandedBackOutputBytes} ]; then cat "$out"; fi
  } > /dev/termination-log 2>/dev/null
  exit "$2"
}
child=
stopping=
trap 'stopping=1; if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi' TERM INT
i=0
while [ -e "$in/argv.$i.0" ]; do
  set --
  j=0
  while [ -e "$in/argv.$i.$j" ]; do
    word=$(cat "$in/argv.$i.$j"; printf x)
    set -- "$@" "\${word%x}"
    j=$((j + 1))
  done
  "$@" &
  child=$!
  wait "$child"
  rc=$?
  if [ -n "$stopping" ]; then wait "$child"; exit 143; fi
  child=
  if [ "$rc" -ne 0 ]; then finish "$i" "$rc"; fi
  i=$((i + 1))
done
finish - 0
`;

/** What the driver's termination message says: the failed command's index, and `$RUNYARD_OUTPUT`. */
export interface DriverResult {
  /** The index of the command that failed; undefined when none did. */
  failedIndex?: number;
  /** The output file's size in bytes (0: not written). */
  outputBytes: number;
  /** Its text; undefined when it was too large to be handed back. */
  output?: string;
}

/** Reads a termination message the driver wrote; undefined when it is not one (the pod never ran it). */
export function parseDriverResult(message: string | undefined): DriverResult | undefined {
  if (message === undefined) return undefined;
  const newline = message.indexOf("\n");
  const header = newline === -1 ? message : message.slice(0, newline);
  const match = new RegExp(`^${resultHeader} failed=(-|\\d+) size=(\\d+)$`).exec(header);
  if (!match) return undefined;
  const outputBytes = Number(match[2]);
  const body = newline === -1 ? "" : message.slice(newline + 1);
  return {
    ...(match[1] === "-" ? {} : { failedIndex: Number(match[1]) }),
    outputBytes,
    ...(outputBytes <= maxHandedBackOutputBytes ? { output: body } : {}),
  };
}
