/**
 * VM mode's ToolRunner: the datapath's commands run in the engine machine, through
 * vmm's MachineService.NetworkCommands and the machine's guest agent (one round trip
 * per run). vmm never boots the machine for them (netd would wait on itself: a boot
 * asks netd for the machine's NIC first); a machine that is not running has nothing
 * to remove, so a run of commands that may all fail succeeds there as a no-op.
 */
import type { Client } from "@connectrpc/connect";
import { ENGINE_MACHINE } from "../../../lib/engine-mode.ts";
import { fromConnectError } from "../../../lib/rpc/connect-errors.ts";
import type { MachineService } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { NetworkError } from "../core/network-error.ts";
import type { ExecResult } from "./exec.ts";
import { commandFailed, type NetCommand, type ToolRunner } from "./tool-runner.ts";

export function engineRunner(client: () => Client<typeof MachineService>): ToolRunner {
  const encoder = new TextEncoder();
  const runner: ToolRunner = {
    where: "engine",
    async run(cmds: NetCommand[]): Promise<ExecResult[]> {
      let results: ExecResult[];
      try {
        const r = await client().networkCommands({
          machine: ENGINE_MACHINE,
          commands: cmds.map((c) => ({ argv: c.argv, stdin: encoder.encode(c.stdin ?? ""), mayFail: !!c.mayFail })),
        });
        results = r.results.map((x) => ({ code: x.code, stdout: x.stdout, stderr: x.stderr }));
      } catch (err) {
        const e = fromConnectError(err);
        if (e.code === "failed_precondition" && cmds.every((c) => c.mayFail)) return cmds.map(() => ({ code: 1, stdout: "", stderr: e.message }));
        throw new NetworkError(e.code === "failed_precondition" ? "unavailable" : e.code, `the engine machine's network: ${e.message}`);
      }
      const failed = results.findIndex((r, i) => r.code !== 0 && !cmds[i]?.mayFail);
      if (failed >= 0) throw commandFailed(cmds[failed]!.argv, results[failed]!);
      return results;
    },
    async sysctl(key, value) {
      await runner.run([{ argv: ["sysctl", "-w", `${key.replaceAll("/", ".")}=${value}`] }]);
    },
  };
  return runner;
}
