/** Fan-out of runtime events to every connected vmm (no buffering: vmm resyncs by state). */
import { create } from "@bufbuild/protobuf";
import { RuntimeEventSchema, type RuntimeEvent } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { nowUnixNano } from "../storage/records.ts";

export type EventListener = (e: RuntimeEvent) => void;

export class EventHub {
  private listeners = new Set<EventListener>();

  subscribe(l: EventListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  emit(e: { type: string; containerId: string; execId?: string; exitCode?: number; oomKilled?: boolean; timeUnixNano?: bigint }): void {
    const event = create(RuntimeEventSchema, { ...e, timeUnixNano: e.timeUnixNano ?? nowUnixNano() });
    for (const l of this.listeners) l(event);
  }
}
