/** Volume data on the host's disk, under fsd's data dir (host mode; option volumes). */
import type { ImageFill, VolumeData } from "../core/volume-data.ts";
import { dataDir, diskUsage, isEmptyDir, makeVolumeDirs, populateFromImage, removeVolumeDirs } from "./volume-fs.ts";

export class HostVolumeData implements VolumeData {
  constructor(private readonly root: string) {}

  path(name: string): string {
    return dataDir(this.root, name);
  }

  async prepare(name: string, fill?: ImageFill): Promise<void> {
    makeVolumeDirs(this.root, name);
    const data = this.path(name);
    if (fill && isEmptyDir(data)) await populateFromImage(fill.lowerDirs, fill.target, data);
  }

  remove(name: string): Promise<void> {
    return removeVolumeDirs(this.root, name);
  }

  sizes(names: string[]): Promise<number[]> {
    return Promise.all(names.map((n) => diskUsage(this.path(n))));
  }
}
