/** Connect handlers of fsd's ShareService: protobuf <-> core/shares.ts. */
import type { ConnectRouter } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ShareService, type ShareSchema } from "../../../proto/gen/arcbox/volumes/v1/shares_pb.ts";
import type { Shares, ShareView } from "../core/shares.ts";

export function shareRoutes(s: Shares) {
  return (router: ConnectRouter) =>
    router.service(ShareService, {
      startShare: async (req) => {
        const share = await s.start({ machine: req.machine, tag: req.tag, hostDir: req.hostDir, readOnly: req.readOnly, cacheMode: req.cacheMode });
        return { share: shareMsg(share), socketPath: share.socketPath };
      },
      stopShare: async (req) => ({ stopped: await s.stop(req.machine, req.tag) }),
      listShares: (req) => ({ shares: s.list(req.machine).map(shareMsg) }),
    });
}

function shareMsg(x: ShareView): MessageInitShape<typeof ShareSchema> {
  const st = x.stats;
  return {
    machine: x.machine,
    tag: x.tag,
    hostDir: x.hostDir,
    readOnly: x.readOnly,
    cacheMode: x.cacheMode,
    socketPath: x.socketPath,
    state: x.state,
    pid: x.pid,
    restarts: x.restarts,
    connected: st?.connected ?? false,
    stats: st && {
      requests: st.requests,
      errors: st.errors,
      bytesRead: st.bytesRead,
      bytesWritten: st.bytesWritten,
      batches: st.batches,
      notifies: st.notifies,
      lookups: st.lookups,
      inodes: st.inodes,
      openHandles: st.openHandles,
      escapesRefused: st.escapesRefused,
    },
  };
}
