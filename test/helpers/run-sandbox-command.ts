import type { RunSandbox } from "../../src/exec/sandbox/run-sandbox.js";
import type { ExecRequest, OutputStream, ProcessLauncher } from "../../src/exec/types.js";

/** `script` run by `sh -c` as a command of `box`, in `cwd`: its result and what it printed. */
export async function runInSandbox(
  launcher: ProcessLauncher,
  box: RunSandbox,
  cwd: string,
  script: string,
  request: Partial<ExecRequest> & Pick<ExecRequest, "env" | "killGraceMs">,
) {
  const out: Record<OutputStream, string> = { stdout: "", stderr: "" };
  const command: ExecRequest = {
    argv: ["/bin/sh", "-c", script],
    ...request,
    onOutput: (stream, data) => {
      out[stream] += data;
    },
  };
  const result = await launcher.run(box.enter(command, cwd));
  return { ...result, ...out };
}
