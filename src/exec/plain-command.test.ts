import { describe, expect, it } from "vitest";
import { plainCommandWords } from "./plain-command.js";

describe("plainCommandWords", () => {
  it("splits a plain command into its argv", () => {
    expect(plainCommandWords("  /bin/echo step-1 --flag=a,b ", ["bash"])).toEqual([
      "/bin/echo",
      "step-1",
      "--flag=a,b",
    ]);
    expect(plainCommandWords("make build", ["/bin/sh"])).toEqual(["make", "build"]);
  });

  it("leaves to the shell anything it would expand, redirect or run itself", () => {
    for (const line of [
      "echo $HOME",
      "ls *.ts",
      "a && b",
      "cat < x",
      "echo 'quoted'",
      "cd /tmp",
      "echo hi",
      "FOO=1 env",
      "ls ~",
      "if true",
      "a; b",
      "x | y",
      "run {a,b}",
      "echo `id`",
    ]) {
      expect(plainCommandWords(line, ["bash"]), line).toBeUndefined();
    }
  });

  it("leaves every line to a shell with flags or one it does not know", () => {
    expect(plainCommandWords("/bin/echo x", ["bash", "-x"])).toBeUndefined();
    expect(plainCommandWords("/bin/echo x", ["python3"])).toBeUndefined();
  });
});
