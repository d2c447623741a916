/**
 * Copy-up: an image's content at a volume's mount target copied into the new, empty
 * volume, with owners, modes and times (host fsd, and the engine machine's agent).
 *
 * The target is resolved inside the image's root, never on the machine running the
 * copy: an image may make any part of the target a symlink (`/data -> /etc`), and
 * resolving `<layer>/data` from outside would copy the host's /etc into the volume.
 * So, in a private mount namespace, the read-only layers are merged with a throw-away
 * tmpfs upper dir, and a static busybox chrooted there resolves the target to its
 * physical path in the image. That path holds no symlink and nothing else writes to
 * the merged tree, so GNU `cp -a` then copies from it as seen from outside, with the
 * xattrs (file capabilities, user.*) that Docker's copy-up keeps and busybox's cp
 * drops. The mounts go with the namespace when the copying process ends.
 */
export const COPY_UP_SCRIPT = [
  "set -e",
  // busybox picks its applet from its own name: inside the root it is .../busybox.
  "bb=$1 mnt=$2 s=$6 cp=$7 helper=.arcbox-copy-up",
  '"$mnt" -t tmpfs -o mode=0700 tmpfs "$s"',
  '"$bb" mkdir "$s/upper" "$s/work" "$s/root"',
  '"$mnt" -t overlay overlay -o "lowerdir=$3,upperdir=$s/upper,workdir=$s/work" "$s/root"',
  // Whatever the image has at this name goes first (a symlink there would be followed).
  '"$bb" rm -rf "$s/root/$helper"',
  '"$bb" mkdir "$s/root/$helper"',
  '"$bb" cp "$bb" "$s/root/$helper/busybox"',
  // In the image's root: a missing or non-directory target copies nothing, as Docker does.
  // The "." after it keeps the path's own trailing newlines from `$(...)`, which strips
  // them: "/d<newline>" must not become "/d", which may be a link out of the root.
  'src=$("$bb" chroot "$s/root" "/$helper/busybox" sh -c \'cd "/$1" 2>/dev/null && pwd -P && echo .\' resolve "$4") || exit 0',
  "src=${src%?} && src=${src%?}",
  '"$bb" rm -rf "$s/root/$helper"',
  'exec "$cp" -a "$s/root$src/." "$5/"',
].join("\n");

export interface CopyUpCommand {
  /** The private mount namespace, e.g. `["unshare", "-m", "--propagation", "private"]`. */
  unshare: string[];
  /** A shell, e.g. `["sh"]` or `[busybox, "sh"]`. */
  shell: string[];
  /** A statically linked busybox: it runs inside the image's root. */
  busybox: string;
  /** GNU cp: `-a` keeps xattrs. */
  cp: string;
  /** A mount(8) that knows overlay, tmpfs and `-o bind`. */
  mount: string;
  lowerDirs: string[];
  /** The mount target, relative to the image's root, without `..` (checked by the caller). */
  target: string;
  /** The volume's empty data directory. */
  dest: string;
  /** An empty directory for the tmpfs (removed by the caller afterwards). */
  scratch: string;
}

/** The argv that copies the image's content at `target` into `dest`. */
export function copyUpArgv(c: CopyUpCommand): string[] {
  const rel = c.target.replace(/^\/+/, "");
  return [...c.unshare, ...c.shell, "-c", COPY_UP_SCRIPT, "copy-up", c.busybox, c.mount, c.lowerDirs.join(":"), rel, c.dest, c.scratch, c.cp];
}
