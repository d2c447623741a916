/** Go's os.FileMode bits, which the docker CLI expects in the path-stat header (added, not OR-ed: bit 31 overflows JS int32). */
export function goFileMode(mode: number): number {
  const type = mode & 0o170000;
  let m = mode & 0o777;
  if (type === 0o040000) m += 2 ** 31;
  else if (type === 0o120000) m += 2 ** 27;
  else if (type === 0o010000) m += 2 ** 25;
  else if (type === 0o140000) m += 2 ** 24;
  else if (type === 0o020000) m += 2 ** 26 + 2 ** 21;
  else if (type === 0o060000) m += 2 ** 26;
  if (mode & 0o4000) m += 2 ** 23;
  if (mode & 0o2000) m += 2 ** 22;
  if (mode & 0o1000) m += 2 ** 20;
  return m;
}
