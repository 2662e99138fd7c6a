import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create as createTar } from "tar";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultArchiveLimits, extractArchive, listArchive } from "../../src/bots/archive.js";
import { RunyardError } from "../../src/core/errors.js";

/**
 * Builds a tar or zip from a JSON list of entries with Python's tarfile and zipfile, which write
 * whatever name, link or type they are given: the shapes an attacker uploads.
 */
const builder = `
import io, json, sys, tarfile, zipfile
kind, out, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if kind == "zip":
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for e in spec:
            info = zipfile.ZipInfo(e["name"])
            info.compress_type = zipfile.ZIP_DEFLATED
            if e.get("type") == "symlink":
                info.create_system = 3
                info.external_attr = (0o120777 << 16)
                z.writestr(info, e["link"])
            elif "zeros" in e:
                with z.open(info, "w", force_zip64=True) as f:
                    chunk = bytes(1 << 20)
                    for _ in range(e["zeros"] >> 20):
                        f.write(chunk)
            else:
                z.writestr(info, e.get("data", ""))
else:
    with tarfile.open(out, "w:gz" if kind == "tar.gz" else "w", format=tarfile.GNU_FORMAT) as t:
        for e in spec:
            info = tarfile.TarInfo(e["name"])
            kind_ = e.get("type", "file")
            data = e.get("data", "").encode()
            if kind_ == "file":
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "chardev": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind_]
            info.linkname = e.get("link", "")
            if kind_ == "chardev":
                info.devmajor, info.devminor = 1, 3
            t.addfile(info)
`;

interface SpecEntry {
  name: string;
  type?: "file" | "dir" | "symlink" | "hardlink" | "chardev" | "fifo";
  data?: string;
  link?: string;
  zeros?: number;
}

let root: string;
/** Where extraction goes: two levels down, so `../../x` lands in `root/a`, still inside the temp folder. */
let dest: string;
/** Where an escaping entry would land. */
let outside: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "runyard-archive-"));
  outside = join(root, "a");
  mkdirSync(join(outside, "b"), { recursive: true });
  mkdirSync(join(outside, "outside"));
  dest = join(outside, "b", "dest");
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function build(kind: "tar" | "tar.gz" | "zip", spec: SpecEntry[], name = "upload.bin"): string {
  const file = join(root, name);
  execFileSync("python3", ["-c", builder, kind, file, JSON.stringify(spec)]);
  return file;
}

/** Everything under a folder, relative, sorted: what a user would see with `find`. */
function tree(folder: string): string[] {
  return readdirSync(folder, { recursive: true, encoding: "utf8" }).sort();
}

async function expectRejected(archive: string, entryName: string, limits = defaultArchiveLimits) {
  const before = tree(root);
  const error = await extractArchive(archive, dest, limits).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RunyardError);
  expect((error as RunyardError).code).toBe("ARCHIVE_REJECTED");
  expect((error as RunyardError).message).toContain(JSON.stringify(entryName));
  expect(existsSync(dest)).toBe(false);
  // Nothing appeared anywhere in the temp folder: not in dest, not beside it.
  expect(tree(root)).toEqual(before);
  return (error as RunyardError).message;
}

describe("extractArchive with good archives", () => {
  function source(): string {
    const src = join(root, "src");
    mkdirSync(join(src, "lib", "deep"), { recursive: true });
    writeFileSync(join(src, "main.py"), "print('hello')\n");
    writeFileSync(join(src, "lib", "deep", "data.bin"), Buffer.from([0, 1, 2, 255, 254, 10, 13]));
    writeFileSync(join(src, "run.sh"), "#!/bin/sh\necho hi\n");
    chmodSync(join(src, "run.sh"), 0o755);
    symlinkSync("main.py", join(src, "lib", "main-link"));
    linkSync(join(src, "main.py"), join(src, "lib", "hard.py"));
    return src;
  }

  function expectSameTree(src: string, out: string) {
    expect(tree(out)).toEqual(tree(src));
    for (const path of tree(src)) {
      const info = lstatSync(join(src, path));
      if (info.isFile()) expect(readFileSync(join(out, path))).toEqual(readFileSync(join(src, path)));
      if (info.isSymbolicLink()) expect(readlinkSync(join(out, path))).toBe(readlinkSync(join(src, path)));
    }
    expect(statSync(join(out, "run.sh")).mode & 0o777).toBe(0o700);
    expect(statSync(join(out, "main.py")).mode & 0o777).toBe(0o600);
    expect(statSync(out).mode & 0o777).toBe(0o700);
  }

  it("extracts a tar.gz made by GNU tar byte-identical, keeping only the executable bit", async () => {
    const src = source();
    const archive = join(root, "upload.bin");
    execFileSync("tar", ["-czf", archive, "-C", src, "."]);
    const listing = await listArchive(archive);
    expect(listing.format).toBe("tar.gz");
    expect(listing.entries).toContainEqual({
      path: "./lib/main-link",
      type: "symlink",
      size: 0,
      linkTarget: "main.py",
    });
    expect(listing.entries).toContainEqual(
      expect.objectContaining({ type: "hardlink", linkTarget: "./main.py" }),
    );
    await extractArchive(archive, dest);
    expectSameTree(src, dest);
  });

  it("extracts a plain tar made by node-tar byte-identical", async () => {
    const src = source();
    const archive = join(root, "upload.zip"); // the name lies; the first bytes decide
    await createTar({ file: archive, cwd: src, portable: true }, ["main.py", "run.sh", "lib"]);
    expect((await listArchive(archive)).format).toBe("tar");
    const written = await extractArchive(archive, dest);
    expect(written).toContain("lib/deep/data.bin");
    expectSameTree(src, dest);
  });

  it("extracts a zip made by Info-ZIP's zip byte-identical, with its symlink", async () => {
    const src = source();
    const archive = join(root, "upload.tgz");
    execFileSync("zip", ["-q", "-r", "-y", archive, "."], { cwd: src });
    const listing = await listArchive(archive);
    expect(listing.format).toBe("zip");
    expect(listing.entries).toContainEqual({
      path: "lib/main-link",
      type: "symlink",
      size: 7,
      linkTarget: "main.py",
    });
    await extractArchive(archive, dest);
    expectSameTree(src, dest);
  });

  it("creates the folders an archive only implies 0700, in tars and zips", async () => {
    for (const kind of ["tar", "zip"] as const) {
      const archive = build(kind, [{ name: "a/b/file.txt", data: "content" }], `implied.${kind}`);
      const out = join(root, `out-${kind}`);
      expect(await extractArchive(archive, out)).toEqual(["a/b/file.txt"]);
      expect(readFileSync(join(out, "a", "b", "file.txt"), "utf8")).toBe("content");
      expect(statSync(join(out, "a")).mode & 0o777).toBe(0o700);
      expect(statSync(join(out, "a", "b")).mode & 0o777).toBe(0o700);
    }
  });
});

describe("extractArchive refuses malicious archives, writing nothing", () => {
  it("refuses a zip-slip entry (../../evil)", async () => {
    const archive = build("zip", [
      { name: "ok.txt", data: "fine" },
      { name: "../../evil", data: "owned" },
    ]);
    expect(await expectRejected(archive, "../../evil")).toMatch(/`\.\.`/);
    expect(existsSync(join(outside, "evil"))).toBe(false);
  });

  it("refuses a tar entry with `..` written with backslashes", async () => {
    const archive = build("tar", [{ name: "..\\..\\evil", data: "owned" }]);
    await expectRejected(archive, "..\\..\\evil");
  });

  it("refuses an absolute path made by GNU tar -P", async () => {
    const target = join(outside, "abs-evil");
    writeFileSync(target, "owned");
    const archive = join(root, "upload.bin");
    execFileSync("tar", ["-cPf", archive, target]);
    rmSync(target);
    await expectRejected(archive, target);
    expect(existsSync(target)).toBe(false);
  });

  it("refuses an absolute path in a zip (/etc/evil)", async () => {
    const archive = build("zip", [{ name: "/etc/evil", data: "owned" }]);
    await expectRejected(archive, "/etc/evil");
  });

  it("refuses a symlink escaping the folder, and a file written through it", async () => {
    const spec: SpecEntry[] = [
      { name: "link", type: "symlink", link: "../../outside" },
      { name: "link/x", data: "owned" },
    ];
    expect(await expectRejected(build("tar.gz", spec), "link")).toMatch(/outside the archive's folder/);
    rmSync(join(root, "upload.bin"));
    await expectRejected(build("zip", spec), "link");
    expect(existsSync(join(outside, "outside", "x"))).toBe(false);
  });

  it("refuses a symlink to an absolute path", async () => {
    await expectRejected(build("tar", [{ name: "etc", type: "symlink", link: "/etc" }]), "etc");
  });

  it("refuses a hardlink to /etc/passwd and to ../x", async () => {
    expect(
      await expectRejected(
        build("tar", [{ name: "passwd", type: "hardlink", link: "/etc/passwd" }]),
        "passwd",
      ),
    ).toMatch(/absolute/);
    rmSync(join(root, "upload.bin"));
    writeFileSync(join(outside, "b", "x"), "victim");
    await expectRejected(build("tar", [{ name: "x-link", type: "hardlink", link: "../x" }]), "x-link");
  });

  it("refuses a character device and a FIFO entry", async () => {
    expect(await expectRejected(build("tar", [{ name: "null", type: "chardev" }]), "null")).toMatch(/device/);
    rmSync(join(root, "upload.bin"));
    await expectRejected(build("tar", [{ name: "pipe", type: "fifo" }]), "pipe");
  });

  it("refuses a zip bomb: 64 MiB of zeros in a small zip, over the ratio", async () => {
    const archive = build("zip", [{ name: "zeros", zeros: 64 << 20 }]);
    expect(statSync(archive).size).toBeLessThan(1 << 20);
    expect(await expectRejected(archive, "zeros")).toMatch(/more than 100 times/);
  });

  it("refuses an archive over the total size", async () => {
    const archive = build("zip", [{ name: "zeros", zeros: 4 << 20 }]);
    const limits = { ...defaultArchiveLimits, maxTotalBytes: 2 << 20, maxRatio: 1e9 };
    expect(await expectRejected(archive, "zeros", limits)).toMatch(/past 2097152 bytes/);
  });

  it("refuses a zip whose headers understate a file's size while writing, leaving no folder", async () => {
    const archive = build("zip", [{ name: "liar", zeros: 1 << 20 }]);
    // Patch the central directory's and the local header's uncompressed size to 1000 bytes.
    const bytes = readFileSync(archive);
    const central = bytes.indexOf(Buffer.from("PK\x01\x02", "latin1"));
    bytes.writeUInt32LE(1000, central + 24);
    bytes.writeUInt32LE(1000, 22);
    writeFileSync(archive, bytes);
    expect((await listArchive(archive)).entries[0]).toMatchObject({ path: "liar", size: 1000 });
    expect(await expectRejected(archive, "liar")).toMatch(/more bytes than listed|too many bytes/);
  });

  it("refuses too many entries, naming the first one over the cap", async () => {
    const spec = Array.from({ length: 12 }, (_, i) => ({ name: `f${i}`, data: "x" }));
    const limits = { ...defaultArchiveLimits, maxEntries: 10 };
    // Listing stops one entry past the cap: a gzip of a million headers is not read to its end.
    expect((await listArchive(build("tar.gz", [...spec, ...spec], "many.tgz"), limits)).entries).toHaveLength(
      11,
    );
    expect((await listArchive(build("zip", [...spec, ...spec], "many.zip"), limits)).entries).toHaveLength(
      11,
    );
    rmSync(join(root, "many.zip"));
    rmSync(join(root, "many.tgz"));
    expect(await expectRejected(build("tar", spec), "f10", limits)).toMatch(/more than 10 entries/);
  });

  it("refuses a path deeper than 32 folders", async () => {
    const deep = `${"d/".repeat(33)}f`;
    expect(await expectRejected(build("tar.gz", [{ name: deep, data: "x" }]), deep)).toMatch(
      /deeper than 32/,
    );
  });

  it("refuses a file that is no archive, whatever its name", async () => {
    const file = join(root, "upload.tar.gz");
    writeFileSync(file, "just text, no archive");
    await expect(extractArchive(file, dest)).rejects.toMatchObject({ code: "ARCHIVE_REJECTED" });
    expect(existsSync(dest)).toBe(false);
  });
});
