/**
 * Content-addressed blobs under `<dataDir>/blobs/sha256/<hex>`. Writes go to a temp
 * file under `<dataDir>/ingest/`, hashed while streaming, and are renamed into place
 * only when complete and matching their digest, so a blob path never holds partial data.
 * Leftover ingest files (an interrupted pull) are removed at startup.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { ImageError } from "../core/errors.ts";

const DIGEST = /^sha256:[a-f0-9]{64}$/;

export class ContentStore {
  readonly blobDir: string;
  readonly ingestDir: string;
  private seq = 0;

  constructor(dataDir: string) {
    this.blobDir = join(dataDir, "blobs", "sha256");
    this.ingestDir = join(dataDir, "ingest");
    mkdirSync(this.blobDir, { recursive: true });
    rmSync(this.ingestDir, { recursive: true, force: true });
    mkdirSync(this.ingestDir, { recursive: true });
  }

  path(digest: string): string {
    if (!DIGEST.test(digest)) throw new ImageError("invalid_argument", `unsupported digest ${JSON.stringify(digest)}`);
    return join(this.blobDir, digest.slice(7));
  }

  has(digest: string): boolean {
    return existsSync(this.path(digest));
  }

  size(digest: string): number {
    return statSync(this.path(digest)).size;
  }

  read(digest: string): Uint8Array {
    try {
      return readFileSync(this.path(digest));
    } catch {
      throw new ImageError("not_found", `blob ${digest} not found in the content store`);
    }
  }

  /** Stores bytes under their digest, checking `expected` when given; returns the digest. */
  put(data: Uint8Array, expected?: string): string {
    const w = this.writer();
    w.write(data);
    return w.commit(expected);
  }

  writer(): BlobWriter {
    return new BlobWriter(join(this.ingestDir, `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}-${++this.seq}`), (digest) => this.path(digest));
  }

  /**
   * A writer for `digest` that keeps what it received when a download breaks, so the
   * next attempt in this run can resume with an HTTP Range request. `resumeBytes` is
   * how much is already there (the caller re-reads it through `adopt`).
   */
  resumableWriter(digest: string): { writer: BlobWriter; resumeBytes: number; partialPath: string } {
    const partialPath = join(this.ingestDir, `partial-${this.path(digest).slice(this.blobDir.length + 1)}`);
    let resumeBytes = 0;
    try {
      resumeBytes = statSync(partialPath).size;
    } catch {}
    return { writer: new BlobWriter(partialPath, (d) => this.path(d), resumeBytes > 0), resumeBytes, partialPath };
  }

  /** Drops a kept partial download (e.g. when the registry cannot resume it). */
  dropPartial(digest: string): void {
    rmSync(join(this.ingestDir, `partial-${digest.slice(7)}`), { force: true });
  }

  delete(digest: string): void {
    rmSync(this.path(digest), { force: true });
  }

  list(): string[] {
    return readdirSync(this.blobDir).map((hex) => `sha256:${hex}`);
  }
}

/** One blob being written: hash as we go, rename on a matching commit, unlink on abort. */
export class BlobWriter {
  private readonly fd: number;
  private readonly hasher = new Bun.CryptoHasher("sha256");
  written = 0;
  private done = false;

  constructor(
    private readonly tmp: string,
    private readonly finalPath: (digest: string) => string,
    append = false,
  ) {
    this.fd = openSync(tmp, append ? "a" : "w", 0o644);
  }

  /** Counts bytes already in the file (a resumed download): hash only, no write. */
  adopt(chunk: Uint8Array): void {
    this.hasher.update(chunk);
    this.written += chunk.length;
  }

  /** Closes the file but keeps it, for a later resume. */
  keep(): void {
    if (this.done) return;
    this.done = true;
    try {
      closeSync(this.fd);
    } catch {}
  }

  write(chunk: Uint8Array): void {
    this.hasher.update(chunk);
    let off = 0;
    while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off);
    this.written += chunk.length;
  }

  /** Verifies against `expected` (if given), then moves the blob into place. */
  commit(expected?: string): string {
    const digest = `sha256:${this.hasher.digest("hex")}`;
    closeSync(this.fd);
    this.done = true;
    if (expected && expected !== digest) {
      rmSync(this.tmp, { force: true });
      throw new ImageError("invalid_argument", `digest mismatch: expected ${expected}, got ${digest}`);
    }
    renameSync(this.tmp, this.finalPath(digest));
    return digest;
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    try {
      closeSync(this.fd);
    } catch {}
    rmSync(this.tmp, { force: true });
  }
}
