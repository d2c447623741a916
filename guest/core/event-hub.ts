/** Fan-out of runtime events to every connected vmm (no buffering: vmm resyncs by state). */
import { newRuntimeEvent } from "../../proto/gen/arcbox/machines/v1/machines_codec.ts";
import type { RuntimeEvent } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { nowUnixNano } from "../storage/records.ts";

export type EventListener = (e: RuntimeEvent) => void;

export class EventHub {
  private listeners = new Set<EventListener>();

  subscribe(l: EventListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  emit(e: { type: string; containerId: string; execId?: string; exitCode?: number; oomKilled?: boolean; timeUnixNano?: bigint }): void {
    const event: RuntimeEvent = {
      ...newRuntimeEvent(),
      type: e.type,
      containerId: e.containerId,
      execId: e.execId ?? "",
      exitCode: e.exitCode ?? 0,
      oomKilled: e.oomKilled ?? false,
      timeUnixNano: e.timeUnixNano ?? nowUnixNano(),
    };
    for (const l of this.listeners) l(event);
  }
}
