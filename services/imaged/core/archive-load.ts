/** docker load (implemented in a later step). */
import { ImageError } from "./errors.ts";
import type { ImageStore } from "./image-store.ts";
import type { Emit } from "./progress.ts";

export async function loadArchive(_store: ImageStore, _body: ReadableStream<Uint8Array>, _emit: Emit): Promise<void> {
  throw new ImageError("not_implemented", "load is not implemented yet");
}
