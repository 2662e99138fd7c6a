/**
 * The environment variables a program reads as a setting rather than as data: the one list
 * runyard consults wherever a value from outside the workflow's own text (an agent's answer, a
 * called workflow's outputs, an approver's input, a line a step printed) could become a later
 * step's variable. Under such a name a value is code or a path to code: bash runs the file
 * `BASH_ENV` names (after expanding `$(...)` in it), the loader maps `LD_PRELOAD`'s library
 * into every program, git runs `GIT_SSH_COMMAND`, a proxy variable sends every request and its
 * credentials to another host.
 *
 * No list of such names is ever complete, which is why values from outside reach steps under
 * names the workflow declared (`HOOK_`/`INPUT_` inputs, an `output_schema`'s `properties`); this
 * list is what those declarations, and a step's own exports, may never name.
 * A name matches exactly, case and all (`PATH`, not `path`, which is an ordinary answer field);
 * the lower-case spellings programs read too (`http_proxy`) are listed as such. A family whose
 * program reads the name in any case matches in any case (`anyCase`): Python's urllib takes
 * `Https_Proxy` and npm `Npm_Config_Registry` as their settings.
 */

/** One family of names: its patterns (`*` stands for any run of name characters) and why it is here. */
export interface SettingFamily {
  patterns: readonly string[];
  /** What a program does with such a variable, as a user reads it in an error. */
  why: string;
  /** Its program reads the name whatever its case, so it matches in any case. */
  anyCase?: true;
}

export const settingFamilies: readonly SettingFamily[] = [
  {
    patterns: ["BASH_ENV", "ENV", "BASH_*", "SHELLOPTS", "BASHOPTS", "PS1", "PS2", "PS3", "PS4"],
    why: "the shell runs the file BASH_ENV/ENV names and expands $(...) in it and in the prompts before a script starts, and SHELLOPTS/BASHOPTS turn on xtrace and other options",
  },
  {
    patterns: ["PROMPT_COMMAND", "IFS", "CDPATH", "GLOBIGNORE", "SHELL", "ZDOTDIR", "FPATH"],
    why: "shells run PROMPT_COMMAND, split words at IFS, resolve cd and globs and find their startup files and functions through these",
  },
  {
    patterns: ["PATH", "HOME", "TMPDIR", "TMP", "TEMP", "XDG_*", "USER", "LOGNAME"],
    why: "which program a command name runs, where programs read their configuration and write their temporary files, and whom they act as",
  },
  {
    patterns: ["LD_*", "DYLD_*", "GLIBC_TUNABLES", "MALLOC_*", "GCONV_PATH", "LOCPATH", "NLSPATH"],
    why: "the dynamic loader and the C library load the libraries and modules these name into every program",
  },
  {
    patterns: ["LANG", "LANGUAGE", "LC_*", "TZ", "TZDIR", "TERMINFO", "TERMINFO_DIRS", "TERM"],
    why: "the C library and terminal programs read locale, time zone and terminal description files from where these say",
  },
  {
    patterns: ["HOSTALIASES", "RES_OPTIONS", "LOCALDOMAIN", "RESOLV_*"],
    why: "the resolver reads host aliases and name server options from these",
  },
  {
    patterns: ["*_PROXY", "*_proxy"],
    why: "HTTP clients send every request (and its credentials) through the proxy these name (Python's in any case of the name)",
    anyCase: true,
  },
  {
    patterns: ["SSL_*", "OPENSSL_*", "CURL_*", "WGETRC", "REQUESTS_CA_BUNDLE", "GNUTLS_*"],
    why: "TLS libraries and HTTP clients take the certificates they trust, and OpenSSL the engines it loads, from these",
  },
  {
    patterns: [
      "GIT_*",
      "SSH_*",
      "GNUPGHOME",
      "EDITOR",
      "VISUAL",
      "PAGER",
      "MANPAGER",
      "LESSOPEN",
      "LESSCLOSE",
      "BROWSER",
    ],
    why: "git, ssh and pagers run the commands these name (GIT_SSH_COMMAND, GIT_ASKPASS, SSH_ASKPASS, EDITOR, LESSOPEN) and read their configuration from them",
  },
  {
    patterns: ["NODE_*", "YARN_*", "COREPACK_*", "BUN_*", "DENO_*"],
    why: "node loads the modules NODE_OPTIONS (--require) and NODE_PATH name; yarn and corepack take their registry and the scripts they run from these",
  },
  {
    patterns: ["npm_config_*", "NPM_CONFIG_*"],
    why: "npm takes its registry, the shell its scripts run in and their node options from these, in any case of the name",
    anyCase: true,
  },
  {
    patterns: ["PYTHON*", "PIP_*", "UV_*", "VIRTUAL_ENV", "CONDA_*"],
    why: "python imports from PYTHONPATH, runs PYTHONSTARTUP and PYTHONWARNINGS' modules; pip and uv install from the index these name",
  },
  {
    patterns: [
      "PERL5*",
      "PERLLIB",
      "PERL_*",
      "RUBY*",
      "GEM_*",
      "BUNDLE_*",
      "LUA_*",
      "PHPRC",
      "PHP_INI_SCAN_DIR",
    ],
    why: "perl (PERL5OPT, PERL5LIB), ruby (RUBYOPT, RUBYLIB), gem, bundler, lua (LUA_INIT) and php load code and options from these",
  },
  {
    patterns: [
      "JAVA_TOOL_OPTIONS",
      "_JAVA_OPTIONS",
      "JDK_JAVA_OPTIONS",
      "JAVA_OPTS",
      "JAVA_HOME",
      "CLASSPATH",
      "MAVEN_*",
      "GRADLE_*",
    ],
    why: "every JVM adds JAVA_TOOL_OPTIONS (an -javaagent: loads code) to its arguments; maven and gradle take options and repositories from these",
  },
  {
    patterns: ["DOTNET_*", "COMPlus_*", "CORECLR_*"],
    why: ".NET runs DOTNET_STARTUP_HOOKS' assemblies and loads CORECLR_PROFILER_PATH's library",
  },
  {
    patterns: [
      "GOFLAGS",
      "GOENV",
      "GOROOT",
      "GOPATH",
      "GOPROXY",
      "GOTOOLCHAIN",
      "GOINSECURE",
      "GONOSUMDB",
      "GONOSUMCHECK",
      "GOPRIVATE",
      "GONOPROXY",
      "GOSUMDB",
      "GOBIN",
      "GOCACHE",
      "GOMODCACHE",
      "GOWORK",
      "GOEXPERIMENT",
      "GODEBUG",
      "CGO_*",
    ],
    why: "go takes build flags (-toolexec runs a command), the toolchain it downloads and the module proxy from these",
  },
  {
    patterns: ["CARGO_*", "RUSTC", "RUSTC_*", "RUSTFLAGS", "RUSTDOCFLAGS", "RUSTUP_*"],
    why: "cargo runs RUSTC_WRAPPER and takes its registries and build flags from these",
  },
  {
    patterns: [
      "MAKEFLAGS",
      "MFLAGS",
      "GNUMAKEFLAGS",
      "MAKEFILES",
      "CC",
      "CXX",
      "CPP",
      "LD",
      "AR",
      "AS",
      "CFLAGS",
      "CXXFLAGS",
      "CPPFLAGS",
      "LDFLAGS",
      "PKG_CONFIG_*",
    ],
    why: "make reads more makefiles and options from these, and builds run the compiler and flags CC, CXX and LD name",
  },
  {
    patterns: ["DOCKER_*", "KUBECONFIG", "CONTAINER_HOST", "CONTAINERS_*", "BUILDKIT_*"],
    why: "docker, podman and kubectl talk to the engine or cluster and read the credentials these name",
  },
  {
    patterns: ["OTEL_*", "TRACEPARENT", "TRACESTATE"],
    why: "an instrumented program sends its telemetry, with the headers it authenticates with, where OTEL_* say, and joins the trace TRACEPARENT names (a traced run sets it for each step)",
    // OpenTelemetry's Java SDK and agent read these names in any case (`otel_javaagent_extensions`
    // loads a jar).
    anyCase: true,
  },
  {
    patterns: ["AWS_*", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_*", "AZURE_*"],
    why: "cloud command lines read credentials and config files (an AWS credential_process runs a command) from these",
  },
  {
    patterns: ["ANTHROPIC_*", "OPENAI_*", "CLAUDE_*", "CODEX_*", "GEMINI_*", "COPILOT_*", "OPENCODE_*"],
    why: "agent command lines send their API key to the endpoint these name",
  },
  {
    patterns: ["RUNYARD_*", "ADOS_*"],
    why: "runyard's own settings, and the file a step's exports are read from",
  },
];

const compiled = settingFamilies.map((family) => ({
  family,
  pattern: new RegExp(
    `^(?:${family.patterns.map((p) => p.split("*").map(escaped).join("[A-Za-z0-9_]*")).join("|")})$`,
    family.anyCase ? "i" : "",
  ),
}));

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The family `name` belongs to when a program reads it as a setting; undefined for a name that is data. */
export function settingFamilyOf(name: string): SettingFamily | undefined {
  return compiled.find((entry) => entry.pattern.test(name))?.family;
}

/**
 * Why `name` may not carry a value from outside the workflow's own text ("PATH is a name
 * programs read as a setting: which program ..."), or undefined when it may.
 */
export function settingNameProblem(name: string): string | undefined {
  const family = settingFamilyOf(name);
  return family ? `${name} is a name programs read as a setting (${family.why})` : undefined;
}

/** What a step's exports may be named; a runner checks it, and the engine again for one that did not. */
const variableName = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A step's own exports (its `BOPS_EXPORT:` lines and `$RUNYARD_OUTPUT`) without those under a
 * setting's name. The workflow's author wrote the step, but not all it prints: a line of a log,
 * an issue or a model's text that starts `BOPS_EXPORT:BASH_ENV=` is the hole GitHub Actions
 * closed by removing `set-env`. A setting is set in the workflow's own text (a step's `env:` or
 * script) instead. Each refusal is a warning naming the export. A name that is no variable name
 * is refused as well: only a runner that does not check its exports' names (an older one, or a
 * member's own that speaks the protocol itself) sends one, and bash reads `BASH_FUNC_echo%%` as
 * a function echo and an entry `PATH=/x:` (name `PATH=/x:`, value `1`) as PATH.
 */
export function withoutSettingNames(exports: Record<string, string>): {
  kept: Record<string, string>;
  refused: string[];
} {
  const kept: Record<string, string> = {};
  const refused: string[] = [];
  for (const [name, value] of Object.entries(exports)) {
    if (!variableName.test(name)) {
      refused.push(
        `export ${JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}...` : name)} was refused: it is no variable name (letters, digits and _, not starting with a digit), and bash takes BASH_FUNC_name%% as a function, an entry named PATH=/x as PATH`,
      );
      continue;
    }
    const problem = settingNameProblem(name);
    if (!problem) kept[name] = value;
    else
      refused.push(
        `export ${name} was refused: ${problem}; export the value under another name and set ${name} from it in the script of the step that needs it`,
      );
  }
  return { kept, refused };
}
