/**
 * The engine's event stream (`docker events`): a bounded in-memory history for `since`
 * queries plus live subscribers. Any part of apid (containers, and the image, network
 * and volume routes) publishes here.
 */
export type EventType = "container" | "image" | "network" | "volume" | "daemon";

export interface DockerEvent {
  Type: EventType;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: "local";
  time: number;
  timeNano: number;
  // Deprecated top-level fields older clients still read.
  status?: string;
  id?: string;
  from?: string;
}

export type EventFilter = Map<string, string[]>;

const HISTORY_LIMIT = 1024;

export class EventsBus {
  private readonly history: DockerEvent[] = [];
  private readonly listeners = new Set<(e: DockerEvent) => void>();

  publish(type: EventType, action: string, id: string, attributes: Record<string, string> = {}): DockerEvent {
    const nowNs = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
    const e: DockerEvent = { Type: type, Action: action, Actor: { ID: id, Attributes: attributes }, scope: "local", time: Number(nowNs / 1_000_000_000n), timeNano: Number(nowNs) };
    if (type === "container") {
      e.status = action;
      e.id = id;
      if (attributes.image) e.from = attributes.image;
    }
    this.history.push(e);
    if (this.history.length > HISTORY_LIMIT) this.history.shift();
    for (const l of this.listeners) l(e);
    return e;
  }

  /** Past events from `sinceNano` on, then live ones via `listener`; returns the unsubscribe. */
  subscribe(sinceNano: number | undefined, listener: (e: DockerEvent) => void): { past: DockerEvent[]; unsubscribe: () => void } {
    const past = sinceNano === undefined ? [] : this.history.filter((e) => e.timeNano >= sinceNano);
    this.listeners.add(listener);
    return { past, unsubscribe: () => this.listeners.delete(listener) };
  }

  get listenerCount(): number {
    return this.listeners.size;
  }
}

/** Docker's event filters: type, event (action), container, image, network, volume, label. */
export function matchesEventFilter(e: DockerEvent, f: EventFilter): boolean {
  const any = (key: string, pred: (v: string) => boolean) => {
    const vs = f.get(key);
    return !vs || vs.length === 0 || vs.some(pred);
  };
  const attrs = e.Actor.Attributes;
  const actorIs = (t: EventType) => (v: string) => e.Type === t && (e.Actor.ID === v || e.Actor.ID.startsWith(v) || attrs.name === v || attrs.name === v.replace(/^\//, ""));
  return (
    any("type", (v) => e.Type === v) &&
    any("event", (v) => e.Action === v || e.Action.startsWith(`${v}:`)) &&
    any("container", actorIs("container")) &&
    any("network", actorIs("network")) &&
    any("volume", actorIs("volume")) &&
    any("image", (v) => (e.Type === "image" && (e.Actor.ID === v || attrs.name === v)) || attrs.image === v) &&
    any("label", (v) => {
      const [k, val] = v.split("=", 2) as [string, string | undefined];
      return val === undefined ? k in attrs : attrs[k] === val;
    })
  );
}
