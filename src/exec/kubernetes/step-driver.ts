/**
 * The driver a step's pod runs (step-job.ts): a POSIX shell script, so any image with `/bin/sh`,
 * `cat` and `wc` can run steps. It runs the attempt's commands in turn (cmd.run's lines, each
 * `SHELL -c LINE`; shell.run's one), each argv word read from its own Secret file (`argv.I.J`),
 * stopping at the first that fails. Variables come from Secret files too (`env.NAME`): the pod's
 * spec names none. On exit it writes a trailer to stdout, taken out of the log (step-trailer.ts):
 * the attempt's mark (a random string from the Secret, in no earlier output), which command
 * failed, and `$RUNYARD_OUTPUT` whole. The pod's log is the only way back every cluster has: a
 * termination message holds 4 KiB at most.
 *
 * SIGTERM (Job deleted, kubelet stopping the pod) is passed on to the running command: the shell
 * is the pod's PID 1, which would otherwise ignore it.
 */

/** The most of `$RUNYARD_OUTPUT` handed back: one exported value's cap and room for its name. */
export const maxHandedBackOutputBytes = 1024 * 1024 + 64 * 1024;

export const stepDriverScript = `# runyard's step driver: the env from its files, each command in turn until one fails, then the trailer.
runyard_in=/runyard/in
runyard_out=/runyard/out/output
for runyard_f in "$runyard_in"/env.*; do
  [ -e "$runyard_f" ] || continue
  runyard_v=$(cat "$runyard_f"; printf x)
  export "\${runyard_f##*/env.}=\${runyard_v%x}"
done
unset runyard_f runyard_v
runyard_finish() {
  runyard_size=0
  if [ -f "$runyard_out" ] && [ ! -L "$runyard_out" ]; then runyard_size=$(($(wc -c < "$runyard_out"))); fi
  runyard_hand=$runyard_size
  if [ "$runyard_size" -gt ${maxHandedBackOutputBytes} ]; then runyard_hand=0; fi
  cat "$runyard_in/mark"
  printf ' failed=%s size=%s handed=%s\\n' "$1" "$runyard_size" "$runyard_hand"
  if [ "$runyard_hand" -gt 0 ]; then cat "$runyard_out"; fi
  exit "$2"
}
runyard_child=
runyard_stopping=
trap 'runyard_stopping=1; if [ -n "$runyard_child" ]; then kill -TERM "$runyard_child" 2>/dev/null; fi' TERM INT
runyard_i=0
while [ -e "$runyard_in/argv.$runyard_i.0" ]; do
  set --
  runyard_j=0
  while [ -e "$runyard_in/argv.$runyard_i.$runyard_j" ]; do
    runyard_w=$(cat "$runyard_in/argv.$runyard_i.$runyard_j"; printf x)
    set -- "$@" "\${runyard_w%x}"
    runyard_j=$((runyard_j + 1))
  done
  "$@" &
  runyard_child=$!
  wait "$runyard_child"
  runyard_rc=$?
  if [ -n "$runyard_stopping" ]; then wait "$runyard_child"; exit 143; fi
  runyard_child=
  if [ "$runyard_rc" -ne 0 ]; then runyard_finish "$runyard_i" "$runyard_rc"; fi
  runyard_i=$((runyard_i + 1))
done
runyard_finish - 0
`;
