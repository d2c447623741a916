/**
 * Resolves a path inside a container's root the way the container would see it:
 * symlinks (absolute or relative) are followed relative to the root and `..` never
 * climbs above it, so no container path can name a host file outside the root.
 */
import { lstatSync, readlinkSync } from "node:fs";
import { ContainerError } from "./container-error.ts";

const MAX_LINKS = 40;

/**
 * Host path for `path` under `root`. With `followFinal` false, a final symlink is
 * returned as itself (docker cp copies links, not their targets).
 */
export function resolveInRoot(root: string, path: string, followFinal = true): string {
  const rootClean = root.replace(/\/+$/, "");
  const pending = path.split("/").filter((p) => p && p !== ".");
  const done: string[] = [];
  let links = 0;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === "..") {
      done.pop();
      continue;
    }
    const candidate = `${rootClean}/${[...done, part].join("/")}`;
    let st;
    try {
      st = lstatSync(candidate);
    } catch {
      // Missing: what follows cannot traverse a symlink of ours, keep it literal.
      done.push(part, ...pending.filter((p) => p !== ".."));
      if (pending.includes("..")) throw new ContainerError("not_found", `Could not find the file ${path}`);
      break;
    }
    if (st.isSymbolicLink() && (pending.length > 0 || followFinal)) {
      if (++links > MAX_LINKS) throw new ContainerError("invalid_argument", `too many levels of symbolic links: ${path}`);
      const target = readlinkSync(candidate);
      if (target.startsWith("/")) done.length = 0;
      pending.unshift(...target.split("/").filter((p) => p && p !== "."));
      continue;
    }
    done.push(part);
  }
  return done.length ? `${rootClean}/${done.join("/")}` : rootClean;
}
