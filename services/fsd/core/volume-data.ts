/**
 * Where a volume's files are and the few things fsd does to them: make the data dir
 * (filling it from the image on first use), measure, remove. On the host (host mode, and
 * option volumes) fsd does them itself (platform/volume-fs.ts); in VM mode a named
 * volume's data is on the engine machine's disk and its agent does them through vmm
 * (platform/machine-volume-data.ts). fsd keeps the records either way.
 */
export interface ImageFill {
  /** The image's layers, uppermost first (host paths). */
  lowerDirs: string[];
  /** The container path whose image content fills the volume. */
  target: string;
}

export interface VolumeData {
  /** The volume's data dir (Docker's Mountpoint; the container's bind source). */
  path(name: string): string;
  /** Makes the data dir if missing; fills it with `fill` when given and the dir is empty. */
  prepare(name: string, fill?: ImageFill): Promise<void>;
  /** Removes the volume's files (never a still-mounted device's content). */
  remove(name: string): Promise<void>;
  /** Bytes per name, in order; -1 when unknown. */
  sizes(names: string[]): Promise<number[]>;
}
