/**
 * `docker diff`: changes of a container's upper (writable) overlay layer against its
 * image layers. Kind: 0 modified, 1 added, 2 deleted (whiteouts and opaque dirs).
 */
import { existsSync, lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";

export interface Change {
  Path: string;
  Kind: 0 | 1 | 2;
}

export function upperChanges(upper: string, lowers: string[]): Change[] {
  const out: Change[] = [];
  const inLower = (rel: string) => lowers.some((l) => existsSync(join(l, rel)));
  const walk = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(join(upper, rel));
    } catch {
      return;
    }
    for (const name of names.sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(upper, path));
      // A whiteout: a 0/0 character device.
      if (st.isCharacterDevice() && st.rdev === 0) {
        out.push({ Path: `/${path}`, Kind: 2 });
        continue;
      }
      const existed = inLower(path);
      out.push({ Path: `/${path}`, Kind: existed ? 0 : 1 });
      if (st.isDirectory()) walk(path);
    }
  };
  walk("");
  return out;
}
