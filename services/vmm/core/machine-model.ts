/**
 * A VM machine's record, as stored and as validated at the edge. Names follow Docker's
 * container-name rule, short enough for a hostname.
 */
import { z } from "zod";
import { MACHINE_STATES } from "./machine-state.ts";
import { mountSchema } from "./machine-mounts.ts";

export const MACHINE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

export const DEFAULTS = { image: "debian", cpus: 2, memoryMib: 1024, diskGib: 8 } as const;
export const LIMITS = { cpus: [1, 64], memoryMib: [128, 1024 * 1024], diskGib: [1, 16 * 1024] } as const;

export const createSpecSchema = z.object({
  name: z.string().regex(MACHINE_NAME, "invalid machine name: names are 1-63 characters of [a-zA-Z0-9_.-], starting with a letter or digit"),
  image: z.string().min(1),
  cpus: z.number().int().min(LIMITS.cpus[0]).max(LIMITS.cpus[1], `--cpus must be between ${LIMITS.cpus[0]} and ${LIMITS.cpus[1]}`),
  memoryMib: z.number().int().min(LIMITS.memoryMib[0], `--memory must be at least ${LIMITS.memoryMib[0]} MiB`).max(LIMITS.memoryMib[1], `--memory must be at most ${LIMITS.memoryMib[1]} MiB`),
  diskGib: z.number().int().min(LIMITS.diskGib[0]).max(LIMITS.diskGib[1], `--disk must be at most ${LIMITS.diskGib[1]} GiB`),
  /** Host directories shared into the machine (VirtioFS), applied on each start. */
  mounts: z.array(mountSchema).default([]),
});
export type CreateSpec = z.infer<typeof createSpecSchema>;

export const machineRecordSchema = createSpecSchema.extend({
  imageId: z.string(),
  state: z.enum(MACHINE_STATES),
  backend: z.string(),
  accel: z.string(),
  accelNote: z.string(),
  pid: z.number().int(),
  mac: z.string(),
  ip: z.string(),
  createdMs: z.number(),
  startedMs: z.number(),
  stoppedMs: z.number(),
  stopReason: z.string(),
});
export type MachineRecord = z.infer<typeof machineRecordSchema>;
