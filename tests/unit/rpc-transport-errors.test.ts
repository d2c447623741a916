/**
 * A call whose connection fails (nothing listening, or the peer dies mid-call) is a
 * 503 naming the service, never the socket error's text (issue 8, item 10).
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HealthService } from "../../proto/gen/arcbox/common/v1/health_pb.ts";
import { unixClient } from "../../lib/rpc/client.ts";
import { errorResponse } from "../../services/apid/docker/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "arcbox-rpc-errors-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function failure(call: Promise<unknown>): Promise<{ status: number; message: string }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeDefined();
  const res = errorResponse(err);
  return { status: res.status, message: ((await res.json()) as { message: string }).message };
}

test("nothing listening on the socket: the service is not running", async () => {
  const client = unixClient(HealthService, join(dir, "imaged.sock"));
  expect(await failure(client.check({}))).toEqual({ status: 503, message: "the image service (imaged) is not running; try again" });
});

test("the peer closes the connection mid-call: the service stopped unexpectedly", async () => {
  const socket = join(dir, "netd.sock");
  // Reads the request, then drops the connection without an answer, as a killed process does.
  const server = createServer((c) => c.once("data", () => c.destroy()));
  await new Promise<void>((r) => server.listen(socket, r));
  try {
    const client = unixClient(HealthService, socket);
    expect(await failure(client.check({}))).toEqual({ status: 503, message: "the network service (netd) stopped unexpectedly; try again" });
  } finally {
    server.close();
  }
});
