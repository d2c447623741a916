/** Disk usage of a directory tree (apparent sizes, hard links counted once), for `size=1`. */
import { lstatSync, readdirSync, type Stats } from "node:fs";
import { join } from "node:path";

export function dirSize(root: string): number {
  let total = 0;
  const seen = new Set<string>();
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(dir, name);
      let st: Stats;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        if (seen.has(key)) continue;
        seen.add(key);
      }
      if (st.isDirectory()) walk(p);
      else total += st.size;
    }
  };
  walk(root);
  return total;
}
