/**
 * Where ArcBox keeps its state: `$ARCBOX_HOME` (or `--home`), else `/var/lib/arcbox`
 * for root and `~/.arcbox` for everyone else. Every path a service uses comes from here,
 * so two homes never share a socket or a file.
 */
import { mkdirSync } from "node:fs";
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
  for (const dir of [home.root, home.run, home.log, home.data]) mkdirSync(dir, { recursive: true, mode: 0o711 });
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
