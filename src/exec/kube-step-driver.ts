/**
 * The driver a step's pod runs (kube-step-job.ts): a POSIX shell script, so any image with
 * `/bin/sh`, `cat` and `wc` can run steps. It runs the attempt's commands one after the other
 * (cmd.run's lines, each `SHELL -c LINE`; shell.run's one), each word of each argv read from its
 * own file of the attempt's Secret (`argv.I.J`), and stops at the first that fails, as the
 * process executor does line by line. On exit it writes a trailer to its stdout, which the
 * runner takes out of the log (kube-step-trailer.ts): the attempt's mark (a random string from
 * the Secret, which no output before it holds), which command failed, and `$RUNYARD_OUTPUT`
 * whole. The pod's log is the only way back that every cluster has: a termination message holds
 * 4 KiB at most.
 *
 * SIGTERM (the Job deleted, the kubelet stopping the pod) is passed on to the running command:
 * the shell is the pod's PID 1, which would otherwise ignore it.
 */

/** The most of `$RUNYARD_OUTPUT` handed back: one exported value's cap and room for its name. */
export const maxHandedBackOutputBytes = 1024 * 1024 + 64 * 1024;

export const stepDriverScript = `# runyard's step driver: each command in turn until one fails, then the trailer with $RUNYARD_OUTPUT.
in=/runyard/in
out=/runyard/out/output
finish() {
  size=0
  if [ -f "$out" ] && [ ! -L "$out" ]; then size=$(($(wc -c < "$out"))); fi
  hand=$size
  if [ "$size" -gt ${maxHandedBackOutputBytes} ]; then hand=0; fi
  cat "$in/mark"
  printf ' failed=%s size=%s handed=%s\\n' "$1" "$size" "$hand"
  if [ "$hand" -gt 0 ]; then cat "$out"; fi
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
