/** Signal names and numbers (Linux x86-64/arm64 numbering), as Docker accepts them. */
const NUMBERS: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  STKFLT: 16,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  XCPU: 24,
  XFSZ: 25,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
  IO: 29,
  PWR: 30,
  SYS: 31,
};

/** Number of a signal given as "SIGTERM", "term", "15"; undefined when unknown. */
export function signalNumber(sig: string): number | undefined {
  if (/^\d+$/.test(sig)) {
    const n = Number(sig);
    return n > 0 && n <= 64 ? n : undefined;
  }
  const name = sig.toUpperCase().replace(/^SIG/, "");
  if (NUMBERS[name]) return NUMBERS[name];
  const rt = /^RTMIN(\+(\d+))?$/.exec(name);
  if (rt) return 34 + Number(rt[2] ?? 0);
  return undefined;
}
