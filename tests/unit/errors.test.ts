import { expect, test } from "bun:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { ArcboxError, HTTP_STATUS } from "../../lib/errors.ts";
import { fromConnectError, toConnectError } from "../../lib/rpc/connect-errors.ts";
import { errorResponse } from "../../services/apid/docker/errors.ts";

test("every error code survives a Connect round trip and maps to its Docker status", async () => {
  for (const [code, http] of Object.entries(HTTP_STATUS)) {
    const original = new ArcboxError(code as ArcboxError["code"], `boom ${code}`);
    const back = fromConnectError(toConnectError(original));
    expect(back.code).toBe(original.code);
    expect(back.message).toBe(`boom ${code}`);
    const res = errorResponse(toConnectError(original));
    expect(res.status).toBe(http);
    expect(await res.json()).toEqual({ message: `boom ${code}` });
  }
});

test("unknown errors become internal errors with their message, never a crash", async () => {
  expect(toConnectError(new Error("disk on fire")).code).toBe(Code.Internal);
  expect(fromConnectError(new ConnectError("x", Code.Unknown)).code).toBe("internal");
  const res = errorResponse(new TypeError("bad"));
  expect(res.status).toBe(500);
  expect(await res.json()).toEqual({ message: "bad" });
});
