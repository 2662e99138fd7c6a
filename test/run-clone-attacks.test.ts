import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import {
  type MemberStep,
  memberWorkflow,
  outputLine,
  runEnded,
  runFolderOf,
  runOutput,
  submitWorkflow,
} from "./helpers/member-runs.js";
import { waitForOutput } from "./helpers/run-output-wait.js";
import { type SandboxedUp, startSandboxedUp } from "./helpers/sandboxed-up.js";
import { waitForRun } from "./helpers/server.js";

/**
 * A hostile member against the sandboxes a runner clones from its template (native/sandbox-clone.c,
 * the fork-server's 'K'; docs/security.md, "What the sandbox costs a step"): what a step can do
 * from a clone to the host, to the template and the namespace every clone of the runner shares,
 * to another run's clone, and to the runner's choice of cloning at all. Each attack prints
 * `LEAK-...` where it gets through.
 *
 * The runner is laid out as users have it by default (docs/security.md, "A run's sandbox"): its
 * home under the steps' `$HOME` (`~/.runyard`), so a run's folder is shown under its home folder,
 * below a tmpfs a sandbox makes there. No pool: each run's sandbox is made at its first command.
 */
let up: SandboxedUp;

/** Its home under the steps' `$HOME`, as users have it by default; no pool. */
async function startCloneUp(): Promise<SandboxedUp> {
  const userHome = tempDir("runyard-clone-attack-home-");
  const home = join(userHome, ".runyard");
  mkdirSync(home);
  return startSandboxedUp({ HOME: userHome, RUNYARD_SANDBOX_POOL: "0", RUNYARD_CAPACITY: "4" }, home);
}

beforeAll(async () => {
  up = await startCloneUp();
}, 180_000);

afterAll(async () => {
  await up?.proc.kill();
});

const workflow = (steps: MemberStep[]) => memberWorkflow(steps, "clone-attack");
const submit = (yaml: string) => submitWorkflow(up.url, yaml, up.userToken);
const outputOf = (runId: string) => runOutput(up.url, runId);
const line = outputLine;
const FALLBACK = /made by bubblewrap, not cloned/;

/** Runs `steps` as one run to its end; its output. */
async function runToEnd(steps: MemberStep[]): Promise<{ status: string; output: string }> {
  const runId = await submit(workflow(steps));
  const view = await waitForRun(up.url, runId, runEnded, 180_000);
  return { status: view.status, output: await outputOf(runId) };
}

/** What a step prints of its sandbox's maker: pid 1's command line (the holder in a clone). */
const PID1 = `echo "pid1=$(tr '\\0' ' ' < /proc/1/cmdline)"`;

describe("a step in a cloned sandbox against the host", () => {
  it("is in a clone: its pid 1 is the holder", async () => {
    const { status, output } = await runToEnd([{ name: "look", script: PID1 }]);
    expect(status, output).toBe("success");
    expect(line(output, "pid1")).toBe("runyard-sandbox-holder ");
  });

  it("cannot change the host's device nodes through its /dev (their mode, their times)", async () => {
    // Attack: the six nodes of a sandbox's /dev are the host's own inodes (bwrap's --dev binds
    // them; a clone binds the template's). Under a root runner the step's uid is the host's root,
    // the nodes' owner, and the owner may chmod: `chmod 0 /dev/null` would break every process on
    // the host and every other run. Each is set to the mode it has (no change on the host) and
    // touched: either succeeding is the attack getting through.
    const before = statSync("/dev/null").ctimeMs;
    const { status, output } = await runToEnd([
      {
        name: "nodes",
        script: [
          PID1,
          "for n in null zero full random urandom tty; do",
          '  chmod "$(stat -c %a /dev/$n)" /dev/$n 2>/dev/null && echo "LEAK-chmod-$n"',
          '  touch -c -m /dev/$n 2>/dev/null && echo "LEAK-touch-$n"',
          "done",
          ...DESCRIPTOR_ATTACKS,
          'echo "null-works=$(echo x > /dev/null && echo yes)"',
          "true",
        ].join("\n"),
      },
    ]);
    expect(status, output).toBe("success");
    expect(line(output, "pid1"), output).toBe("runyard-sandbox-holder ");
    expect(output).not.toContain("LEAK");
    // The nodes still work, and the host's /dev/null was not touched.
    expect(line(output, "null-works")).toBe("yes");
    expect(statSync("/dev/null").ctimeMs).toBe(before);
  });

  it("writes no /proc file but its own processes' (no sysctl, no sysrq, no irq)", async () => {
    // Attack: under a root runner proc's files that check the uid alone are writable by a step;
    // the clone covers /proc/sys and bwrap's covers read-only. Everything writable outside the
    // pid folders is listed.
    const { status, output } = await runToEnd([
      {
        name: "proc",
        script: [
          "find /proc -maxdepth 4 \\( -regex '/proc/[0-9]+' -o -path /proc/self -o -path /proc/thread-self \\) -prune -o -writable \\! -type d \\! -perm -0002 -print 2>/dev/null | sed 's/^/LEAK-writable=/'",
          "echo x > /proc/sys/kernel/hostname 2>/dev/null && echo LEAK-hostname",
          "echo checked",
        ].join("\n"),
      },
    ]);
    expect(status, output).toBe("success");
    expect(output).toContain("checked\n");
    expect(output).not.toContain("LEAK");
  });
});

describe("a step in a cloned sandbox against the namespaces", () => {
  it("makes no namespace: not its own, not through its parent (the outer one every clone shares), not through pid 1's", async () => {
    // Attack: every clone's user namespace is a child of the template's outer one, U1, whose
    // limit the runner raised to 65536 for its clones. A step asks for U1 (NS_GET_PARENT on its
    // own), joins it or pid 1's namespaces (setns), or unshares any namespace.
    const perl = [
      "perl -e '",
      'sub say_ { my ($what, $ok) = @_; print(($ok ? "LEAK-" : "held-") . "$what\\n"); }',
      'open(my $own, "<", "/proc/self/ns/user") or die "own: $!";',
      "my $parent = ioctl($own, 0xb702, 0);",
      'say_("parent-fd", defined $parent);',
      'if (defined $parent) { say_("setns-parent", syscall(308, $parent + 0, 0x10000000) == 0); }',
      'for my $kind (qw(user mnt ipc net uts pid cgroup)) { open(my $ns, "<", "/proc/1/ns/$kind") or next; say_("setns-pid1-$kind", syscall(308, fileno($ns), 0) == 0); }',
      "my %flags = (user => 0x10000000, mnt => 0x20000, ipc => 0x8000000, net => 0x40000000, uts => 0x4000000, pid => 0x20000000, cgroup => 0x2000000);",
      'for my $kind (sort keys %flags) { say_("unshare-$kind", syscall(272, $flags{$kind}) == 0); }',
      "'",
    ].join("\n");
    const { status, output } = await runToEnd([
      {
        name: "namespaces",
        script: [
          PID1,
          perl,
          "unshare -U true 2>/dev/null && echo LEAK-unshare-U",
          "unshare -Ur true 2>/dev/null && echo LEAK-unshare-Ur",
          "unshare -m true 2>/dev/null && echo LEAK-unshare-m",
          "unshare -n true 2>/dev/null && echo LEAK-unshare-n",
          'echo "caps=$(grep CapEff /proc/self/status | cut -f2)"',
          "true",
        ].join("\n"),
      },
    ]);
    expect(status, output).toBe("success");
    expect(line(output, "pid1"), output).toBe("runyard-sandbox-holder ");
    expect(output).toContain("held-unshare-user\n");
    expect(output).not.toContain("LEAK");
    expect(line(output, "caps")).toBe("0000000000000000");
  });

  it("cannot trace, write or end pid 1, the holder of its sandbox", async () => {
    // Attack: the holder runs as the step's uid in the step's user namespace; were it dumpable, a
    // step could trace it (PTRACE_SEIZE), write its memory (/proc/1/mem) and so end the sandbox,
    // which docs/security.md says no step can. Under a root runner it is not exec'd, and its
    // memory is a copy of the fork-server's: none of it may be read (mem, maps, process_vm_readv)
    // nor its program found (exe).
    const { status, output } = await runToEnd([
      {
        name: "pid1",
        script: [
          PID1,
          "perl -e '",
          'print "LEAK-seize\\n" if syscall(101, 0x4206, 1, 0, 0) == 0;',
          'print "LEAK-mem\\n" if open(my $m, "+<", "/proc/1/mem");',
          'print "LEAK-environ\\n" if open(my $e, "<", "/proc/1/environ") && defined(<$e>);',
          'print "LEAK-root\\n" if opendir(my $r, "/proc/1/root/");',
          'print "LEAK-fd\\n" if defined(readlink("/proc/1/fd/0")) || open(my $f, "<", "/proc/1/fd/0");',
          'print "LEAK-exe\\n" if defined(readlink("/proc/1/exe")) || open(my $x, "<", "/proc/1/exe");',
          'print "LEAK-maps\\n" if open(my $p, "<", "/proc/1/maps") && defined(<$p>);',
          // process_vm_readv of the first bytes of the static program's image (0x400000).
          'my $buf = "\\0" x 16; my $local = pack("QQ", unpack("Q", pack("p", $buf)), 16);',
          'my $remote = pack("QQ", 0x400000, 16);',
          'print "LEAK-vm-read\\n" if syscall(310, 1, $local, 1, $remote, 1, 0) > 0;',
          "'",
          "kill -KILL 1 2>/dev/null; kill -TERM 1 2>/dev/null",
          'echo "ns=$(readlink /proc/self/ns/pid)"',
        ].join("\n"),
      },
      { name: "after", script: 'echo "ns-after=$(readlink /proc/self/ns/pid)"' },
    ]);
    expect(status, output).toBe("success");
    expect(line(output, "pid1"), output).toBe("runyard-sandbox-holder ");
    expect(output).not.toContain("LEAK");
    // The sandbox is the same one for the next step: nothing ended it.
    expect(line(output, "ns-after")).toBe(line(output, "ns"));
  });
});

describe("a step in a cloned sandbox against another run's", () => {
  it("cannot read another run's kernel keys, nor find them through /proc/keys", async () => {
    // Attack: run B's step lists /proc/keys, which shows every key whose owner its namespace maps
    // (a root runner's runs all map 65534 to the host's root), finds the key run A keeps in its own
    // user keyring, links run A's keyring into its own session keyring (the keyring's owner, the
    // same uid to the kernel, may link it) and so possesses and reads run A's key. Before the
    // door and the clone refused the key calls it printed `LEAK-linked=run-A-keeps-this-0f9e`.
    const secret = "run-A-keeps-this-0f9e";
    const victim = await submit(
      workflow([
        {
          name: "keeper",
          script: [
            PID1,
            `perl -e 'my ($type, $name, $data) = ("user", "clone-attack-victim", "${secret}"); my $id = syscall(248, $type, $name, $data, length($data), -4); print "key=$id\\n";'`,
            'echo "keys-ready"',
            "until [ -e release ]; do sleep 0.2; done",
          ].join("\n"),
        },
      ]),
    );
    // The key calls are refused in a run's sandbox (a seccomp filter): then run A keeps no key to
    // steal, and run B's calls below are refused too. Where they pass, run B must still not read it.
    await waitForOutput(up.url, victim, "keys-ready\n", 120_000, up.userToken);
    const thief = await runToEnd([
      {
        name: "thief",
        script: [
          PID1,
          "perl -e '",
          'open(my $k, "<", "/proc/keys") or die; my @keys = <$k>;',
          "my ($id) = map { /^(\\w+) .* user\\s+clone-attack-victim:/ ? hex($1) : () } @keys;",
          'print "seen=" . ($id ? "yes" : "no") . "\\n";',
          'my $buf = "\\0" x 256; my $n = $id ? syscall(250, 11, $id, $buf, 256) : -1;',
          'print "LEAK-read=" . substr($buf, 0, $n) . "\\n" if $n > 0;',
          "my $own = syscall(250, 0, -4, 0);",
          "my ($root) = map { /^(\\w+) .* keyring\\s+_uid\\.0:/ ? hex($1) : () } @keys;",
          'print "LEAK-host-root-keyring\\n" if $root && syscall(250, 11, $root, $buf, 256) >= 0;',
          "for (@keys) {",
          "  next unless /^(\\w+) .* keyring\\s+/; my $ring = hex($1); next if $ring == $own;",
          "  if ($id && syscall(250, 8, $ring, -3) == 0) {",
          '    $buf = "\\0" x 256; $n = syscall(250, 11, $id, $buf, 256);',
          '    print "LEAK-linked=" . substr($buf, 0, $n) . "\\n" if $n > 0;',
          "  }",
          "}",
          "'",
          "echo searched",
        ].join("\n"),
      },
    ]);
    writeFileSync(join(await runFolderOf(up.home, victim), "release"), "");
    const view = await waitForRun(up.url, victim, runEnded, 120_000);
    expect(view.status).toBe("success");
    expect(thief.status, thief.output).toBe("success");
    expect(line(thief.output, "pid1"), thief.output).toBe("runyard-sandbox-holder ");
    expect(thief.output).toContain("searched\n");
    expect(thief.output).not.toContain(secret);
    expect(thief.output).not.toContain("LEAK");
  });
});

/** Tries to leave a setuid or setgid file in its folder (the host's), every way a program sets the bits. */
/**
 * A step's descriptors, and pid 1's where it may look: each node they open is set to the mode it
 * has (no change) and touched. The stdin a command was given used to be the host's /dev/null,
 * opened by the runner's helper outside the sandbox: its owner by uid under a root runner, the
 * step could `chmod 0 /proc/self/fd/0` and break it for the whole machine.
 */
const DESCRIPTOR_ATTACKS = [
  "for f in /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2 /proc/1/fd/*; do",
  '  [ -c "$f" ] || continue',
  '  chmod "$(stat -L -c %a "$f")" "$f" 2>/dev/null && echo "LEAK-chmod-$f"',
  '  touch -c -m "$f" 2>/dev/null && echo "LEAK-touch-$f"',
  "done",
];

const SETID_ATTACKS = [
  "cp /bin/true ./suid && chmod 4755 ./suid 2>/dev/null && echo LEAK-chmod-setuid",
  "chmod 2755 ./suid 2>/dev/null && echo LEAK-chmod-setgid",
  "install -m 4755 /bin/true ./installed 2>/dev/null && echo LEAK-install-setuid",
  `perl -e 'use Fcntl; sysopen(my $f, "made", O_CREAT|O_WRONLY, 04755) and print "LEAK-open-setuid\\n"'`,
  `perl -e 'syscall(133, "node", 0100000|04755, 0) == 0 and print "LEAK-mknod-setuid\\n"'`,
  'echo "modes=$(stat -c %a suid installed made 2>/dev/null | tr "\\n" " ")"',
];

describe("a step against the uid it has outside (a root runner's: the host's root)", () => {
  it("in a command's own sandbox bwrap makes, neither changes the host's /dev nodes nor reads a keyring, and leaves no setuid or setgid file", async () => {
    // A step whose env names another HOME gets a command sandbox bwrap makes (not the run's clone,
    // not entered by the door). Its /dev/null was the host's inode, bound writable (a root runner's
    // step is its owner by uid), and no filter refused the key calls; a file it makes in its folder
    // is root's on the host, and nosuid holds inside the sandbox only: any host user who can reach
    // the folder (a step_cwd_roots folder, a shared checkout) would run a setuid one as root.
    const before = statSync("/dev/null").ctimeMs;
    const { output } = await runToEnd([
      {
        name: "command-sandbox",
        env: { HOME: "/tmp/elsewhere" },
        script: [
          "set +e",
          PID1,
          'chmod "$(stat -c %a /dev/null)" /dev/null 2>/dev/null && echo LEAK-chmod-null',
          ...DESCRIPTOR_ATTACKS,
          "touch /dev/null 2>/dev/null; echo null-works=$(echo x > /dev/null && echo yes)",
          "perl -e '",
          'open(my $k, "<", "/proc/keys") or die; my $buf = "\\0" x 256;',
          'for (<$k>) { print "LEAK-host-root-keyring\\n" if /^(\\w+) .* keyring\\s+_uid\\.0:/ && syscall(250, 11, hex($1), $buf, 256) >= 0 }',
          "'",
          "keyctl show @u >/dev/null 2>&1 && echo LEAK-keyctl",
          ...SETID_ATTACKS,
          "true",
        ].join("\n"),
      },
    ]);
    expect(line(output, "pid1"), output).toMatch(/^bwrap /);
    // Lines of its own only: bwrap's command line (pid 1's) holds the script.
    expect(output, output).not.toMatch(/^LEAK-/m);
    expect(statSync("/dev/null").ctimeMs).toBe(before);
    expect(line(output, "null-works")).toBe("yes");
    // What was made has no setuid or setgid bit (stat's %a shows them as a fourth digit).
    expect(line(output, "modes")).toMatch(/^([0-7]{3} )+$/);
  });

  it("in its run's sandbox leaves no setuid or setgid file either", async () => {
    const { status, output } = await runToEnd([
      { name: "run-sandbox", script: ["set +e", PID1, ...SETID_ATTACKS, "true"].join("\n") },
    ]);
    expect(status, output).toBe("success");
    expect(line(output, "pid1")).toBe("runyard-sandbox-holder ");
    expect(output).not.toMatch(/^LEAK-/m);
    expect(line(output, "modes")).toMatch(/^([0-7]{3} )+$/);
  });
});

describe("a step against the runner's cloning (last: a runner that stops cloning stops for good)", () => {
  it("cannot make the runner stop cloning for every run by a link where its run's next sandbox mounts a tmpfs", async () => {
    // Attack: the runner's home lies under $HOME, so a run's sandbox covers `$HOME/.runyard` in
    // the run's home folder with a tmpfs (its folder's mount point lies below). A step whose env
    // names another HOME gets a sandbox of its own, with the run's home folder shown at that HOME:
    // there `.runyard` is no mount point, and the step makes it a link. The run's sandbox, made at
    // its next command, then meets a link where it mounts its tmpfs: a clone refused once makes the
    // runner have bwrap make every run's sandbox from then on, for every member.
    const planted = await runToEnd([
      {
        name: "plant",
        env: { HOME: "/tmp/elsewhere" },
        script: [PID1, 'rmdir "$HOME/.runyard" 2>/dev/null', 'ln -s . "$HOME/.runyard" && echo planted'].join(
          "\n",
        ),
      },
      { name: "next", script: [PID1, "echo next-ran"].join("\n") },
    ]);
    expect(planted.output).toContain("planted\n");
    const after = await runToEnd([{ name: "later", script: PID1 }]);
    expect(after.status, after.output).toBe("success");
    // Another member's later run is still cloned, and the runner never said it stopped cloning.
    expect(line(after.output, "pid1"), `${planted.output}\n${up.proc.output().slice(-3000)}`).toBe(
      "runyard-sandbox-holder ",
    );
    expect(up.proc.output()).not.toMatch(FALLBACK);
  });
});
