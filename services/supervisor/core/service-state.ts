/** Lifecycle states of a supervised service (the server maps them to the proto enum). */
export type ServiceStateName = "idle" | "starting" | "ready" | "backoff" | "stopping" | "stopped";
