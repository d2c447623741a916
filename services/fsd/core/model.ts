/** A volume record as fsd stores it. */
export interface VolumeRecord {
  name: string;
  driver: string;
  createdAt: string;
  labels: Record<string, string>;
  /** Local driver options: type, o, device. */
  options: Record<string, string>;
  anonymous: boolean;
  /** Image content has been copied in (or the volume was used): never copy again. */
  populated: boolean;
}

/** Docker marks anonymous volumes with this label; `volume prune` removes only those by default. */
export const ANONYMOUS_LABEL = "com.docker.volume.anonymous";
