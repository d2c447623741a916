/**
 * The `arcbox.mounts=` kernel argument: the machine's VirtioFS shares for the guest to
 * mount during boot (native/init/machine-setup.c). Entries `TAG:DIR[:ro]` joined by ','; DIR
 * has every byte outside [A-Za-z0-9/._-] written as %XX (UTF-8), so spaces, ':' and ','
 * in paths survive the command line's word splitting and the list's separators.
 */
export interface GuestMount {
  tag: string;
  guestDir: string;
  readOnly: boolean;
}

const encodeDir = (dir: string) =>
  Array.from(new TextEncoder().encode(dir), (b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9/._-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }).join("");

/** `arcbox.mounts=...`, or undefined without mounts. */
export function mountsArg(mounts: readonly GuestMount[]): string | undefined {
  if (!mounts.length) return undefined;
  return `arcbox.mounts=${mounts.map((m) => `${m.tag}:${encodeDir(m.guestDir)}${m.readOnly ? ":ro" : ""}`).join(",")}`;
}
