import {
  closeSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";

/**
 * The jobs a runner holds, so that its next life knows which jobs died with it and can tell the
 * server at once (hello's `reaped`): `<state>/jobs.log`, a line appended as each job is taken up
 * (`+ <id>`) and let go (`- <id>`), written before anything of the job runs. One write a change on
 * a file kept open, where a file a job cost an open and a close each; the kernel has the line once
 * `write` returns, so a killed runner's next life reads it. Started over at each start, and when
 * the runner holds nothing.
 */
export class JobJournal {
  private readonly path: string;
  /** Undefined once closed: a job cut at the stop may end after it, and the number be another file's. */
  private fd: number | undefined;
  private readonly held = new Set<string>();
  /** Jobs the previous life of this runner held; none of them can be resumed by this one. */
  readonly previous: string[];

  constructor(stateDir: string) {
    this.path = join(stateDir, "jobs.log");
    this.previous = [...new Set([...readLog(this.path), ...readFolder(join(stateDir, "jobs"))])];
    // Start afresh: what was listed died with the last life, and is said to the server in the hello.
    const fresh = `${this.path}.new`;
    writeFileSync(fresh, "", { mode: 0o600 });
    renameSync(fresh, this.path);
    rmSync(join(stateDir, "jobs"), { recursive: true, force: true });
    this.fd = openSync(this.path, "a", 0o600);
  }

  add(jobId: string): void {
    if (this.fd === undefined) return;
    this.held.add(jobId);
    writeSync(this.fd, `+ ${encodeURIComponent(jobId)}\n`);
  }

  remove(jobId: string): void {
    if (this.fd === undefined || !this.held.delete(jobId)) return;
    // Nothing held lists nothing: starting over keeps the file from growing with every job.
    if (this.held.size === 0) ftruncateSync(this.fd, 0);
    else writeSync(this.fd, `- ${encodeURIComponent(jobId)}\n`);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The jobs a journal lists as held: taken up and not let go. */
function readLog(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return []; // first start
  }
  const held = new Set<string>();
  for (const line of text.split("\n")) {
    const id = line.slice(2);
    if (!id) continue; // a line cut short by a kill, or the last one's end
    if (line.startsWith("+ ")) held.add(decodeURIComponent(id));
    else if (line.startsWith("- ")) held.delete(decodeURIComponent(id));
  }
  return [...held];
}

/** What a runner of 0.2.0 or older left: a file a job under `<state>/jobs/`. */
function readFolder(folder: string): string[] {
  try {
    return readdirSync(folder).map(decodeURIComponent);
  } catch {
    return [];
  }
}
