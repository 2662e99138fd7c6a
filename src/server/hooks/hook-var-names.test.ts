import { describe, expect, it } from "vitest";
import { hookVarNameRefusal } from "./hook-var-names.js";

describe("hook variable names", () => {
  it("refuses names a loader, shell or runyard reads: a delivery's body must not steer how a step runs", () => {
    for (const name of [
      "PATH",
      "LD_PRELOAD",
      "LD_LIBRARY_PATH",
      "DYLD_INSERT_LIBRARIES",
      "BASH_ENV",
      "ENV",
      "IFS",
      "SHELLOPTS",
      "PS4",
      "PROMPT_COMMAND",
      "HOME",
      "NODE_OPTIONS",
      "PYTHONPATH",
      "GIT_SSH_COMMAND",
      "GIT_CONFIG_COUNT",
      "RUNYARD_RUN_ID",
      "RUNYARD_TOKEN",
    ]) {
      expect(hookVarNameRefusal(name), name).toMatch(/environment/);
    }
  });

  it("takes ordinary names, also lower-case spellings of reserved ones", () => {
    for (const name of ["BRANCH", "COMMIT_MESSAGE", "path", "ENVIRONMENT", "REF_PATH", "MY_LD_PRELOAD"]) {
      expect(hookVarNameRefusal(name), name).toBeUndefined();
    }
  });
});
