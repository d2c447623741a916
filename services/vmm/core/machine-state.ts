/**
 * The life of a VM machine as an explicit state machine. Every change of a record's
 * state goes through `transition`, which refuses moves the table does not allow, so a
 * racing stop/start/rm cannot leave a record in a state nothing expects.
 *
 *   created ──start──► starting ──booted──► running ──stop──► stopping ──exit──► stopped
 *      ▲                  │ failed/exit        │ exit (crash, poweroff)              │
 *      │                  ▼                    ▼                                     │
 *      │               stopped ◄───────────────┘                      start ◄────────┘
 *   (any but starting/stopping) ──rm──► removing
 */
import { MachineError } from "./machine-error.ts";

export const MACHINE_STATES = ["created", "starting", "running", "stopping", "stopped", "removing"] as const;
export type MachineState = (typeof MACHINE_STATES)[number];

const ALLOWED: Record<MachineState, readonly MachineState[]> = {
  created: ["starting", "removing"],
  starting: ["running", "stopping", "stopped"],
  running: ["stopping", "stopped", "removing"],
  stopping: ["stopped"],
  stopped: ["starting", "removing"],
  removing: [],
};

export function canTransition(from: MachineState, to: MachineState): boolean {
  return ALLOWED[from].includes(to);
}

/** Throws a conflict error naming the machine when `from -> to` is not allowed. */
export function assertTransition(name: string, from: MachineState, to: MachineState): void {
  if (canTransition(from, to)) return;
  const what: Partial<Record<MachineState, string>> = {
    starting: "start",
    stopping: "stop",
    removing: "remove",
    running: "mark running",
    stopped: "mark stopped",
  };
  throw new MachineError("conflict", `cannot ${what[to] ?? to} machine ${name}: it is ${from}`);
}

/** Whether a VM process may exist in this state (vmm must not idle-exit, must adopt). */
export function hasProcess(state: MachineState): boolean {
  return state === "starting" || state === "running" || state === "stopping";
}
