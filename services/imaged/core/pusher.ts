/** docker push (implemented in a later step). */
import { ImageError } from "./errors.ts";
import type { Emit } from "./progress.ts";
import type { Credentials } from "../platform/registry-client.ts";
import type { ImageStore } from "./image-store.ts";
import type { RegistryConfig } from "./registry-config.ts";

export class Pusher {
  constructor(
    private readonly store: ImageStore,
    private readonly registryConfig: () => RegistryConfig,
  ) {}

  async push(_opts: { reference: string; creds?: Credentials }, _emit: Emit): Promise<void> {
    throw new ImageError("not_implemented", "push is not implemented yet");
  }
}
