/**
 * Applies netd's chains atomically with one iptables-restore (our chains are declared,
 * hence flushed and refilled; builtin chains are only given missing jumps).
 */
import type { ChainRules } from "../core/firewall-rules.ts";
import type { NetNames } from "../core/names.ts";
import { jumpRules } from "../core/firewall-rules.ts";
import { exec, execOk } from "./exec.ts";
import type { ToolRunner } from "./tool-runner.ts";

/** netd's own chains in one table. */
function ownChains(n: NetNames, table: "nat" | "filter"): string[] {
  return table === "nat" ? [n.chains.nat, n.chains.dnat] : [n.chains.forward, n.chains.input];
}

async function currentRules(): Promise<string> {
  const r = await exec(["iptables-save"]);
  return r.stdout;
}

function hasRule(saved: string, table: string, rule: string): boolean {
  const start = saved.indexOf(`*${table}\n`);
  if (start < 0) return false;
  const end = saved.indexOf("COMMIT", start);
  return saved
    .slice(start, end)
    .split("\n")
    .some((l) => l.trim() === rule);
}

/** Jumps are checked (iptables-save) on the first apply only: after that one restore is enough. */
const jumpsChecked = new Set<string>();

export async function applyChains(n: NetNames, rules: ChainRules): Promise<void> {
  const saved = jumpsChecked.has(n.tag) ? undefined : await currentRules();
  const jumps = jumpRules(n);
  const out: string[] = [];
  for (const table of ["nat", "filter"] as const) {
    out.push(`*${table}`);
    const mine = ownChains(n, table);
    for (const c of mine) out.push(`:${c} - [0:0]`);
    out.push(...rules[table]);
    for (const [t, chain, spec] of jumps) {
      if (saved !== undefined && t === table && !hasRule(saved, table, `-A ${chain} ${spec}`)) out.push(`-I ${chain} 1 ${spec}`);
    }
    out.push("COMMIT");
  }
  await execOk(["iptables-restore", "-w", "--noflush"], `${out.join("\n")}\n`);
  jumpsChecked.add(n.tag);
}

/** Removes our jumps and chains (nothing of ours left in the host firewall). */
export async function removeChains(n: NetNames): Promise<void> {
  jumpsChecked.delete(n.tag);
  const saved = await currentRules();
  const out: string[] = [];
  for (const table of ["nat", "filter"] as const) {
    out.push(`*${table}`);
    for (const [t, chain, spec] of jumpRules(n)) if (t === table && hasRule(saved, table, `-A ${chain} ${spec}`)) out.push(`-D ${chain} ${spec}`);
    const mine = ownChains(n, table);
    for (const c of mine) {
      if (saved.includes(`:${c} `)) out.push(`-F ${c}`, `-X ${c}`);
    }
    out.push("COMMIT");
  }
  await execOk(["iptables-restore", "-w", "--noflush"], `${out.join("\n")}\n`);
}

/**
 * VM mode: the engine machine's tables hold ArcBox's rules alone, so they are replaced
 * whole (no --noflush): builtin chains, our chains and the jumps into them, in one
 * restore. Nothing to check first, and a rebooted machine gets everything back.
 */
export async function applyOwnTables(runner: ToolRunner, n: NetNames, rules: ChainRules): Promise<void> {
  const out: string[] = [];
  const builtins = { nat: ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"], filter: ["INPUT", "FORWARD", "OUTPUT"] };
  for (const table of ["nat", "filter"] as const) {
    out.push(`*${table}`);
    for (const c of builtins[table]) out.push(`:${c} ACCEPT [0:0]`);
    for (const c of ownChains(n, table)) out.push(`:${c} - [0:0]`);
    for (const [t, chain, spec] of jumpRules(n)) if (t === table) out.push(`-A ${chain} ${spec}`);
    out.push(...rules[table]);
    out.push("COMMIT");
  }
  await runner.run([{ argv: ["iptables-restore", "-w"], stdin: `${out.join("\n")}\n` }]);
}
