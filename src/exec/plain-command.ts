/**
 * A cmd.run line that is one plain command (`make build`) runs without a shell, which would exec
 * the same argv at the cost of its own start (as much as a trivial step). "Plain" is strict: words
 * no shell treats specially, the first not an assignment, builtin or keyword. A program that
 * cannot start (not found, a script without #!) goes to the shell after all, so messages and exit
 * code (127) are the shell's. Only difference: no SHLVL and `_` in the program's environment.
 */
export function plainCommandWords(line: string, shell: readonly string[]): string[] | undefined {
  if (shell.length !== 1 || !PLAIN_SHELLS.has(shell[0]!.split("/").pop()!)) return undefined;
  const trimmed = line.trim();
  if (!PLAIN_LINE.test(trimmed)) return undefined;
  const words = trimmed.split(/[ \t]+/);
  const program = words[0]!;
  if (program.includes("=") || SHELL_WORDS.has(program)) return undefined;
  return words;
}

const PLAIN_SHELLS = new Set(["bash", "sh", "dash"]);
const PLAIN_LINE = /^[A-Za-z0-9_./:,+@%=-]+(?:[ \t]+[A-Za-z0-9_./:,+@%=-]+)*$/;

/** Builtins and keywords of bash and POSIX sh: these the shell itself must run. */
const SHELL_WORDS = new Set(
  (
    ". : alias bg bind break builtin caller case cd command compgen complete compopt continue coproc " +
    "declare dirs disown do done echo elif else enable esac eval exec exit export false fc fg fi for " +
    "function getopts hash help history if in jobs kill let local logout mapfile popd printf pushd pwd " +
    "read readarray readonly return select set shift shopt source suspend test then time times trap true " +
    "type typeset ulimit umask unalias unset until wait while"
  ).split(" "),
);
