/** docker save (implemented in a later step). */
import { ImageError } from "./errors.ts";
import type { ImageStore } from "./image-store.ts";

export async function* saveArchive(_store: ImageStore, _refs: string[]): AsyncGenerator<Uint8Array> {
  throw new ImageError("not_implemented", "save is not implemented yet");
}
