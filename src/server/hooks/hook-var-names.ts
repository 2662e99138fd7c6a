/**
 * Names a hook may not give its variables. A hook's values come from a delivery's body, which the
 * sender (and whoever wrote the branch name or commit message in it) controls; they reach the
 * step as environment variables, so a name the dynamic loader, the shell, an interpreter or
 * runyard itself reads would let that text choose which code the step runs (`LD_PRELOAD`, `PATH`,
 * `BASH_ENV`, `GIT_SSH_COMMAND`, ...) or pose as what runyard sets (`RUNYARD_RUN_ID`).
 */
const reservedNames = new Set([
  "PATH",
  "HOME",
  "SHELL",
  "ENV",
  "IFS",
  "CDPATH",
  "GLOBIGNORE",
  "SHELLOPTS",
  "BASHOPTS",
  "PS4",
  "PROMPT_COMMAND",
  "NODE_OPTIONS",
  "NODE_PATH",
  "PYTHONPATH",
  "PYTHONSTARTUP",
  "PYTHONHOME",
  "PERL5OPT",
  "PERL5LIB",
  "RUBYOPT",
  "RUBYLIB",
  "JAVA_TOOL_OPTIONS",
  "TMPDIR",
]);
const reservedPrefixes = ["LD_", "DYLD_", "BASH_", "GIT_", "RUNYARD_"];

/** Why `name` may not be a hook variable, or undefined when it may. */
export function hookVarNameRefusal(name: string): string | undefined {
  const prefix = reservedPrefixes.find((start) => name.startsWith(start));
  if (!reservedNames.has(name) && prefix === undefined) return undefined;
  return prefix === undefined
    ? `${name} is an environment variable that decides how a step's programs run`
    : `names starting with ${prefix} are environment variables that decide how a step's programs run`;
}
