import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  settingFamilies,
  settingFamilyOf,
  settingNameProblem,
  withoutSettingNames,
} from "./setting-names.js";

describe("setting names", () => {
  it("holds every name the shells, the loader and the common tools read as a setting", () => {
    const settings = [
      "BASH_ENV",
      "ENV",
      "PATH",
      "IFS",
      "SHELLOPTS",
      "BASHOPTS",
      "PS4",
      "PROMPT_COMMAND",
      "LD_PRELOAD",
      "LD_LIBRARY_PATH",
      "LD_AUDIT",
      "GLIBC_TUNABLES",
      "GCONV_PATH",
      "NODE_OPTIONS",
      "NODE_PATH",
      "GIT_SSH_COMMAND",
      "GIT_CONFIG_GLOBAL",
      "SSH_ASKPASS",
      "PYTHONPATH",
      "PYTHONSTARTUP",
      "PERL5OPT",
      "PERL5LIB",
      "PERLLIB",
      "RUBYOPT",
      "GEM_HOME",
      "MAKEFLAGS",
      "HTTPS_PROXY",
      "https_proxy",
      "NO_PROXY",
      "ALL_PROXY",
      "HOME",
      "TMPDIR",
      "SSL_CERT_FILE",
      "SSL_CERT_DIR",
      "OPENSSL_CONF",
      "CURL_CA_BUNDLE",
      "JAVA_TOOL_OPTIONS",
      "_JAVA_OPTIONS",
      "DOCKER_HOST",
      "npm_config_registry",
      "NPM_CONFIG_USERCONFIG",
      "GOFLAGS",
      "RUSTC_WRAPPER",
      "DOTNET_STARTUP_HOOKS",
      "AWS_CONFIG_FILE",
      "ANTHROPIC_BASE_URL",
      "RUNYARD_OUTPUT",
      "LESSOPEN",
      "EDITOR",
      "LANG",
      "LC_ALL",
      // Python's urllib reads *_proxy in any case, npm npm_config_* in any case.
      "Https_Proxy",
      "hTTp_pRoxy",
      "No_Proxy",
      "Npm_Config_Registry",
      "NPM_config_script_shell",
      // OpenTelemetry's Java SDK and agent read OTEL_* in any case; a traced step's own trace.
      "OTEL_EXPORTER_OTLP_ENDPOINT",
      "otel_exporter_otlp_endpoint",
      "Otel_Javaagent_Extensions",
      "TRACEPARENT",
      "traceparent",
      "TraceState",
    ];
    for (const name of settings) expect(settingFamilyOf(name), name).toBeDefined();
  });

  it("leaves data names alone: answer fields, hook and call inputs, lower-case words", () => {
    const data = [
      "severity",
      "count",
      "path",
      "home",
      "env",
      "lang",
      "SEVERITY",
      "PATHS_CHANGED",
      "DEPLOY_PATH",
      "MY_PATH",
      "HOMEPAGE",
      "ENVIRONMENT",
      "TARGET_ENV",
      "HOOK_BRANCH",
      "HOOK_PATH",
      "HOOK_LD_PRELOAD",
      "INPUT_PATH",
      "INPUT_BASH_ENV",
      "REPORT",
      "DEPLOY_TOKEN",
      "GOAL",
      "COUNT",
    ];
    for (const name of data) expect(settingFamilyOf(name), name).toBeUndefined();
  });

  it("says which name it is and what programs do with it", () => {
    expect(settingNameProblem("BASH_ENV")).toMatch(
      /^BASH_ENV is a name programs read as a setting \(the shell runs the file/,
    );
    expect(settingNameProblem("LD_PRELOAD")).toContain("dynamic loader");
    expect(settingNameProblem("severity")).toBeUndefined();
  });

  it("gives every family a reason and patterns of name characters only", () => {
    for (const family of settingFamilies) {
      expect(family.why.length).toBeGreaterThan(20);
      for (const pattern of family.patterns) expect(pattern).toMatch(/^[A-Za-z0-9_*]+$/);
    }
  });

  it("drops a step's own exports under a setting's name, one warning each", () => {
    expect(withoutSettingNames({ ARTIFACT: "a.tgz", NODE_OPTIONS: "--require /tmp/x.js" })).toEqual({
      kept: { ARTIFACT: "a.tgz" },
      refused: [
        expect.stringMatching(/^export NODE_OPTIONS was refused: NODE_OPTIONS is a name programs read/),
      ],
    });
  });

  it("drops an export under a name that is no variable name, which bash would read as a function or a setting", () => {
    const { kept, refused } = withoutSettingNames({
      "BASH_FUNC_echo%%": "() { id; }",
      "PATH=/tmp/x:": "1",
      "1ST": "a",
      REPORT: "ok",
    });
    expect(kept).toEqual({ REPORT: "ok" });
    expect(refused).toHaveLength(3);
    expect(refused[0]).toMatch(/^export "BASH_FUNC_echo%%" was refused: it is no variable name/);
  });

  it("is the list docs/workflows.md shows, family by family", () => {
    const docs = readFileSync(join(import.meta.dirname, "../../docs/workflows.md"), "utf8");
    for (const family of settingFamilies) {
      const row = `| ${family.patterns.map((p) => `\`${p}\``).join(", ")} |`;
      expect(docs, row).toContain(row);
    }
  });
});
