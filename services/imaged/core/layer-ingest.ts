/**
 * Downloads one layer blob and converts it at the same time: every chunk is hashed
 * and appended to the blob's ingest file, and fed through the decompressor into the
 * layer's converter: the overlay tar filter and sqfstar writing a temp squashfs image
 * (layer-image.ts), or, where the kernel cannot mount those, the tar extractor writing
 * a temp snapshot directory. Only when the blob digest and the diff ID both verify are
 * the blob and the layer moved into place; on any failure both temp copies are removed,
 * so the store never holds half a layer. A layer sqfstar cannot express (NeedsUnpack)
 * is unpacked from the verified blob afterwards.
 */
import { buildSquashfs, layerImageSupport } from "../platform/layer-image.ts";
import { NeedsUnpack, overlayTarFilter } from "../platform/overlay-tar-filter.ts";
import { extractTar } from "../platform/tar-extract.ts";
import type { BlobWriter, ContentStore } from "../storage/content-store.ts";
import type { Snapshots } from "../storage/snapshots.ts";
import { ImageError } from "./errors.ts";
import type { Compression } from "./manifest.ts";

export interface IngestOptions {
  body: ReadableStream<Uint8Array>;
  /** Blob digest and size from the manifest. */
  digest: string;
  size: number;
  compression: Compression;
  /** From the image config's rootfs.diff_ids; checked after unpacking. */
  expectedDiffId?: string;
  store: ContentStore;
  snapshots: Snapshots;
  /** False when the blob is already in the store (re-unpacking from it). */
  writeBlob: boolean;
  /**
   * A broken earlier download of this blob: its bytes are replayed from the file first
   * (the body then carries only the rest), and a new network failure keeps the file.
   */
  resume?: { writer: BlobWriter; bytes: number; path: string };
  onDownloaded?: (bytes: number) => void;
}

export interface IngestResult {
  diffId: string;
  size: number;
}

function decompressor(c: Compression): TransformStream<Uint8Array, Uint8Array> {
  if (c === "none") return new TransformStream<Uint8Array, Uint8Array>();
  return new DecompressionStream(c as "gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
}

/** A layer being written in one form: temp output, then committed or discarded. */
interface Conversion {
  done: Promise<{ diffId: string; size: number }>;
  commit(diffId: string): void;
  discard(): void;
}

function toImage(tar: ReadableStream<Uint8Array>, snapshots: Snapshots): Conversion {
  const tmp = snapshots.tempImage();
  const filter = overlayTarFilter(tar);
  return {
    done: buildSquashfs(filter.output, tmp).then(() => filter.result),
    commit: (diffId) => snapshots.commitImage(tmp, diffId),
    discard: () => snapshots.discardImage(tmp),
  };
}

function toDirectory(tar: ReadableStream<Uint8Array>, snapshots: Snapshots): Conversion {
  const tmp = snapshots.tempLayer();
  return {
    done: extractTar(tar, tmp),
    commit: (diffId) => snapshots.commitLayer(tmp, diffId),
    discard: () => snapshots.discard(tmp),
  };
}

export async function ingestLayer(o: IngestOptions): Promise<IngestResult> {
  const blob: BlobWriter | undefined = o.resume?.writer ?? (o.writeBlob ? o.store.writer() : undefined);
  let networkFailure = false;
  let blobCommitted = false;
  /** Moves the blob into place once (throws on a digest mismatch). */
  const commitBlob = () => {
    if (blobCommitted) return;
    blobCommitted = true;
    blob?.commit(o.digest);
  };
  const ds = decompressor(o.compression);
  const sink = ds.writable.getWriter();
  let conversion = layerImageSupport().ok ? toImage(ds.readable, o.snapshots) : toDirectory(ds.readable, o.snapshots);
  let extractErr: unknown;
  const extraction = conversion.done.catch((err) => {
    extractErr = err;
    throw err;
  });
  extraction.catch(() => {});
  const reader = o.body.getReader();
  let received = 0;
  const feed = async (value: Uint8Array) => {
    if (extractErr) return;
    await sink.ready.catch(() => {});
    if (!extractErr) void sink.write(value).catch(() => {});
  };
  try {
    if (o.resume) {
      for await (const chunk of Bun.file(o.resume.path).slice(0, o.resume.bytes).stream()) {
        received += chunk.length;
        blob!.adopt(chunk);
        await feed(chunk);
      }
    }
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received += value.length;
        if (received > o.size) throw new ImageError("invalid_argument", `layer ${o.digest} is larger than its manifest says (${o.size} bytes)`);
        blob?.write(value);
        o.onDownloaded?.(received);
        // Backpressure: wait while the unpacker is behind. After a failed unpack keep
        // hashing the rest, so a wrong blob is reported as a digest mismatch.
        await feed(value);
      }
    } catch (err) {
      if (err instanceof ImageError) throw err;
      networkFailure = true;
      throw new ImageError("unavailable", `error downloading layer ${o.digest}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (received !== o.size) {
      networkFailure = true;
      throw new ImageError("unavailable", `error downloading layer ${o.digest}: unexpected EOF after ${received} of ${o.size} bytes`);
    }
    if (extractErr && !(extractErr instanceof NeedsUnpack)) commitBlob(); // throws on a digest mismatch
    let closeErr: unknown;
    await sink.close().catch((err) => (closeErr = err ?? new Error("stream closed")));
    let result: Awaited<Conversion["done"]>;
    try {
      result = await extraction.catch(async (err) => {
        if (!(err instanceof NeedsUnpack)) throw err;
        // Unpack from the verified blob, which is in the store by now.
        commitBlob();
        conversion.discard();
        conversion = toDirectory(Bun.file(o.store.path(o.digest)).stream().pipeThrough(decompressor(o.compression)), o.snapshots);
        closeErr = undefined;
        return await conversion.done;
      });
    } catch (err) {
      if (err instanceof ImageError) throw err;
      throw new ImageError(
        "invalid_argument",
        `layer ${o.digest}: failed to unpack${o.compression === "none" ? "" : ` (corrupt ${o.compression} stream?)`}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    if (closeErr) throw new ImageError("invalid_argument", `layer ${o.digest}: corrupt ${o.compression} stream: ${closeErr instanceof Error ? closeErr.message : String(closeErr)}`);
    commitBlob();
    if (o.expectedDiffId && result.diffId !== o.expectedDiffId) {
      throw new ImageError("invalid_argument", `layer ${o.digest}: unpacked content ${result.diffId} does not match the config's diff ID ${o.expectedDiffId}`);
    }
    conversion.commit(result.diffId);
    return { diffId: result.diffId, size: result.size };
  } catch (err) {
    // A broken connection keeps a resumable download; anything else discards it.
    if (networkFailure && o.resume) blob?.keep();
    else blob?.abort();
    await reader.cancel().catch(() => {});
    await sink.abort().catch(() => {});
    await extraction.catch(() => {});
    await conversion.done.catch(() => {});
    conversion.discard();
    // A blob that verified but whose content was bad must not stay in the store.
    if (o.writeBlob && err instanceof ImageError && /diff ID|unpack|corrupt|invalid layer/.test(err.message)) o.store.delete(o.digest);
    throw err;
  }
}
