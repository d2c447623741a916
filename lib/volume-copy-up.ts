/**
 * Copy-up: an image's content at a volume's mount target copied into the new, empty
 * volume, with owners, modes and times (host fsd, and the engine machine's agent).
 *
 * The target is resolved inside the image's root, never on the machine running the
 * copy: an image may make any part of the target a symlink (`/data -> /etc`), and
 * resolving `<layer>/data` from outside would copy the host's /etc into the volume.
 * So the copy runs chrooted into the merged layers: in a private mount namespace, the
 * read-only layers get a throw-away tmpfs upper dir (only for the two helper entries:
 * a static busybox and the bind of the volume's directory), and `cp -a` runs inside.
 * The mounts go with the namespace when the copying process ends.
 */
export const COPY_UP_SCRIPT = [
  "set -e",
  // busybox picks its applet from its own name: inside the root it is .../busybox.
  "bb=$1 mnt=$2 s=$6 helper=.arcbox-copy-up",
  '"$mnt" -t tmpfs -o mode=0700 tmpfs "$s"',
  '"$bb" mkdir "$s/upper" "$s/work" "$s/root"',
  '"$mnt" -t overlay overlay -o "lowerdir=$3,upperdir=$s/upper,workdir=$s/work" "$s/root"',
  // Whatever the image has at this name goes first (a symlink there would be followed).
  '"$bb" rm -rf "$s/root/$helper"',
  '"$bb" mkdir "$s/root/$helper" "$s/root/$helper/dest"',
  '"$bb" cp "$bb" "$s/root/$helper/busybox"',
  '"$mnt" -o bind "$5" "$s/root/$helper/dest"',
  // In the image's root: a missing or non-directory target copies nothing, as Docker does.
  'exec "$bb" chroot "$s/root" "/$helper/busybox" sh -c \'test -d "/$1" || exit 0; exec "/$2/busybox" cp -a "/$1/." "/$2/dest/"\' copy-up "$4" "$helper"',
].join("\n");

export interface CopyUpCommand {
  /** The private mount namespace, e.g. `["unshare", "-m", "--propagation", "private"]`. */
  unshare: string[];
  /** A shell, e.g. `["sh"]` or `[busybox, "sh"]`. */
  shell: string[];
  /** A statically linked busybox: it runs inside the image's root. */
  busybox: string;
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
  return [...c.unshare, ...c.shell, "-c", COPY_UP_SCRIPT, "copy-up", c.busybox, c.mount, c.lowerDirs.join(":"), rel, c.dest, c.scratch];
}
