/** docker import (implemented in a later step). */
import { ImageError } from "./errors.ts";
import type { ImageStore } from "./image-store.ts";
import type { Emit } from "./progress.ts";

export interface ImportOptions {
  repo: string;
  tag: string;
  message: string;
  changes: string[];
  platform: string;
}

export async function importTarball(_store: ImageStore, _body: ReadableStream<Uint8Array>, _opts: ImportOptions, _emit: Emit): Promise<void> {
  throw new ImageError("not_implemented", "import is not implemented yet");
}
