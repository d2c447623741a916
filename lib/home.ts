/**
 * Where ArcBox keeps its state: `$ARCBOX_HOME` (or `--home`), else `/var/lib/arcbox`
 * for root and `~/.arcbox` for everyone else. Every path a service uses comes from here,
 * so two homes never share a socket or a file.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";

export interface ArcboxHome {
  root: string;
  run: string;
  log: string;
  data: string;
}

export function defaultHomeDir(): string {
  if (process.env.ARCBOX_HOME) return resolve(process.env.ARCBOX_HOME);
  return process.getuid?.() === 0 ? "/var/lib/arcbox" : join(homedir(), ".arcbox");
}

export function arcboxHome(root: string = defaultHomeDir()): ArcboxHome {
  const abs = resolve(root);
  return { root: abs, run: join(abs, "run"), log: join(abs, "log"), data: join(abs, "data") };
}

export function ensureHome(home: ArcboxHome): void {
  for (const dir of [home.root, home.run, home.data]) mkdirSync(dir, { recursive: true, mode: 0o711 });
  mkdirSync(home.log, { recursive: true, mode: 0o700 });
}

/**
 * Owner-only access to what other local users must not read: the log directory and its
 * files, and daemon.json (registry mirrors and settings). Run at daemon start, so a home
 * written by an older version (0644 files) is fixed too. Only regular files are touched.
 */
export function restrictHomePermissions(home: ArcboxHome): void {
  chmodSync(home.log, 0o700);
  const files = readdirSync(home.log)
    .filter((f) => f.endsWith(".log"))
    .map((f) => join(home.log, f));
  for (const path of [...files, join(home.root, "daemon.json")]) {
    try {
      if (lstatSync(path).isFile()) chmodSync(path, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
}

/** Connect socket of a service. */
export const serviceSocket = (home: ArcboxHome, service: string) => join(home.run, `${service}.sock`);
/** Debug socket of a service: health, state dump, metrics. */
export const debugSocket = (home: ArcboxHome, service: string) => join(home.run, `${service}.debug.sock`);
/** The Docker Engine API socket served by apid. */
export const dockerSocket = (home: ArcboxHome) => join(home.run, "docker.sock");
export const supervisorSocket = (home: ArcboxHome) => join(home.run, "supervisor.sock");
export const supervisorLock = (home: ArcboxHome) => join(home.run, "arcboxd.lock");
export const serviceLog = (home: ArcboxHome, service: string) => join(home.log, `${service}.log`);
/** Private state directory of one service; only that service writes under it. */
export function serviceDataDir(home: ArcboxHome, service: string): string {
  const dir = join(home.data, service);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
