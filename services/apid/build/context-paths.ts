/** Paths inside the build context: never outside it, whatever `..` or symlinks say. */
import { lstatSync, readlinkSync, type Stats } from "node:fs";
import { join, posix } from "node:path";
import { BuildError } from "./errors.ts";

/**
 * The host path of a context path, with symlinks followed inside the context (a link
 * to "/etc" means the context's etc, as Docker's FollowSymlinkInScope does).
 */
export function resolveInContext(root: string, path: string, followLast = true): string {
  const parts = posix.normalize(`/${path}`).split("/").filter(Boolean);
  const resolved: string[] = [];
  let hops = 0;
  while (parts.length) {
    const part = parts.shift()!;
    if (part === ".") continue;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    const candidate = join(root, ...resolved, part);
    let st: Stats;
    try {
      st = lstatSync(candidate);
    } catch {
      resolved.push(part, ...parts);
      return join(root, ...resolved);
    }
    if (st.isSymbolicLink() && (followLast || parts.length > 0)) {
      if (++hops > 255) throw new BuildError(`too many levels of symbolic links: ${path}`);
      const target = readlinkSync(candidate);
      if (target.startsWith("/")) resolved.length = 0;
      parts.unshift(...target.split("/").filter(Boolean));
      continue;
    }
    resolved.push(part);
  }
  return join(root, ...resolved);
}
