import { execFileSync } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";

/**
 * The label of the local base images. Not the test label on purpose: `removeTestObjects` of
 * another test file running at the same time would remove a base image under a build using it.
 * They are cached by tag across runs instead (nothing can be pulled, so building is the only way).
 */
export const baseImageLabel = "runyard.test.base";

export const testPythonImage = "runyard-test-python:1";
export const testNodeImage = "runyard-test-node:1";
export const testNodeRuntimeImage = "runyard-test-node-runtime:1";
export const testAgentImage = "runyard-test-agent:1";

/** Stdlib folders no bot of a test needs; left out to keep the image small. */
const skippedStdlib = new Set(["test", "__pycache__", "idlelib", "tkinter", "ensurepip"]);

const built = new Map<string, Promise<string>>();

/** `FROM scratch` with the host's Debian python3.11, its libraries, its stdlib and busybox as /bin/sh. */
export function pythonBaseImage(): Promise<string> {
  return once(testPythonImage, (rootfs) => {
    copyWithLibraries("/usr/bin/python3.11", rootfs);
    cpSync("/usr/lib/python3.11", join(rootfs, "usr/lib/python3.11"), {
      recursive: true,
      // Debian links sitecustomize.py into /etc: copy what links point at.
      dereference: true,
      filter: (source) => !skippedStdlib.has(basename(source)),
    });
    symlinkSync("python3.11", join(rootfs, "usr/bin/python3"));
  });
}

/** `FROM scratch` with the host's node, its libraries and busybox as /bin/sh. */
export function nodeBaseImage(): Promise<string> {
  return once(testNodeImage, (rootfs) => {
    copyWithLibraries("/usr/bin/node", rootfs);
  });
}

/**
 * What runyard's Dockerfile installs on `node:20-bookworm-slim` for its runtime stage, from the
 * host's files: node, bash (steps and the orphan reaper), tini (PID 1) at Debian's paths, the
 * official image's `node` user (uid 1000) and /usr/bin/env for the CLI's shebang; x86-64 Debian
 * paths, as the CI machines have. No git: the steps of the compose test fetch nothing.
 */
export function nodeRuntimeBaseImage(): Promise<string> {
  return once(testNodeRuntimeImage, (rootfs) => {
    for (const binary of ["/usr/bin/node", "/usr/bin/bash", "/usr/bin/tini"]) {
      copyWithLibraries(binary, rootfs);
    }
    // The rest of libc6 that native modules link and node itself does not (argon2's librt).
    for (const library of ["/lib/x86_64-linux-gnu/librt.so.1", "/lib/x86_64-linux-gnu/libresolv.so.2"]) {
      copyFileSync(library, join(rootfs, library));
    }
    mkdirSync(join(rootfs, "etc"));
    writeFileSync(
      join(rootfs, "etc/passwd"),
      "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n",
    );
    writeFileSync(join(rootfs, "etc/group"), "root:x:0:\nnode:x:1000:\n");
    symlinkSync("/bin/busybox", join(rootfs, "usr/bin/env"));
    mkdirSync(join(rootfs, "usr/local/bin"), { recursive: true });
  });
}

/**
 * What docker/agent.Dockerfile builds on `node:20-bookworm-slim`, from the host's files: node,
 * git with its helpers, bash, curl and busybox's tools. Sandboxed agents' CLIs come from the runner,
 * mounted read-only.
 */
export function agentBaseImage(): Promise<string> {
  return once(testAgentImage, (rootfs) => {
    for (const binary of ["/usr/bin/node", "/usr/bin/git", "/usr/bin/bash", "/usr/bin/curl"])
      copyWithLibraries(binary, rootfs);
    for (const folder of ["/usr/lib/git-core", "/usr/share/git-core"]) {
      cpSync(folder, join(rootfs, folder), { recursive: true, verbatimSymlinks: true });
    }
    for (const helper of ["git-remote-http", "git-http-fetch"]) {
      copyWithLibraries(join("/usr/lib/git-core", helper), rootfs);
    }
    // The rest of the C library a Debian image has, which native CLIs (Claude Code's) link.
    for (const library of debianRuntimeLibraries()) {
      mkdirSync(dirname(join(rootfs, library)), { recursive: true });
      copyFileSync(library, join(rootfs, library));
    }
    mkdirSync(join(rootfs, "etc"));
    writeFileSync(
      join(rootfs, "etc/passwd"),
      "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/sh\n",
    );
    writeFileSync(join(rootfs, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");
    symlinkSync("/bin/busybox", join(rootfs, "usr/bin/env"));
  });
}

function once(tag: string, fill: (rootfs: string) => void): Promise<string> {
  let image = built.get(tag);
  if (!image) {
    image = buildBase(tag, fill);
    built.set(tag, image);
    // A failed build may be retried by the next caller.
    image.catch(() => built.delete(tag));
  }
  return image;
}

async function buildBase(tag: string, fill: (rootfs: string) => void): Promise<string> {
  const engine = new DockerEngine();
  try {
    await engine.docker.getImage(tag).inspect();
    return tag;
  } catch {
    // Not built yet.
  }
  const context = mkdtempSync(join(tmpdir(), "runyard-base-"));
  try {
    const rootfs = join(context, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    copyFileSync("/usr/bin/busybox", join(rootfs, "bin/busybox"));
    fill(rootfs);
    writeFileSync(
      join(context, "Dockerfile"),
      [
        "FROM scratch",
        "COPY rootfs/ /",
        // busybox's applets give the image a /bin/sh, so a Dockerfile's shell-form RUN works.
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
        // A /tmp anyone may write to, as Debian's (the context's tar drops the sticky mode).
        'RUN ["/bin/busybox", "sh", "-c", "mkdir -p /tmp && chmod 1777 /tmp"]',
        "ENV PATH=/usr/local/bin:/usr/bin:/bin",
        "",
      ].join("\n"),
    );
    await engine.build(context, tag, () => {}, { [baseImageLabel]: "1" });
    return tag;
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

/** libc6's, libgcc's and libstdc++'s shared libraries, as dpkg lists them (x86-64 Debian). */
function debianRuntimeLibraries(): string[] {
  const listed = execFileSync("dpkg", ["-L", "libc6", "libgcc-s1", "libstdc++6"], { encoding: "utf8" });
  return listed
    .split("\n")
    .filter((path) => /^\/(usr\/)?lib\/x86_64-linux-gnu\/[^/]+\.so[.0-9]*$/.test(path));
}

/** Copies a binary and every shared library `ldd` lists for it, each at its own path. */
function copyWithLibraries(binary: string, rootfs: string): void {
  const paths = [binary];
  for (const line of execFileSync("ldd", [binary], { encoding: "utf8" }).split("\n")) {
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match?.[1]) paths.push(match[1]);
  }
  for (const path of paths) {
    const target = join(rootfs, path);
    mkdirSync(dirname(target), { recursive: true });
    // copyFileSync follows links, so /lib64 (a link on usrmerged Debian) becomes a real folder.
    copyFileSync(path, target);
  }
}
