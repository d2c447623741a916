/**
 * Session start on a virtio-serial port (guest/README.md, "Sessions over virtio-serial").
 * A serial port is one byte stream that outlives host connections: bytes of an older
 * session may still be in flight when a new host connects. So each side starts a session
 * with SYNC and the reader discards everything before the peer's SYNC; frames follow.
 * The host writes SYNC on connect and sends frames only after the guest's SYNC (the
 * relay, native/serial/, answers once it has a fresh agent connection for the session);
 * no SYNC within a few seconds of a running agent: reconnect after a short pause.
 * SYNC's first byte (0xff) occurs nowhere else in it, and no frame starts with it (a
 * length >= 0xff000000 exceeds the frame limit).
 */
export const SYNC = Buffer.from([0xff, ...Buffer.from("ARCBOX/AGENT/1\n", "latin1")]);

/** Finds the peer's SYNC in a stream: push chunks until it returns the bytes after it. */
export class SyncScanner {
  private matched = 0;
  private found = false;

  get synced(): boolean {
    return this.found;
  }

  /** Undefined while SYNC has not been seen; then the rest of the chunk (maybe empty). */
  push(chunk: Buffer): Buffer | undefined {
    if (this.found) return chunk;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      this.matched = b === SYNC[this.matched] ? this.matched + 1 : b === SYNC[0] ? 1 : 0;
      if (this.matched === SYNC.length) {
        this.found = true;
        return chunk.subarray(i + 1);
      }
    }
    return undefined;
  }
}
