/**
 * The DHCP server's UDP sockets (port 67): one on 0.0.0.0, which receives clients'
 * broadcasts from every bridge, and one on the machine gateway, which receives
 * unicast renewals (the more specific binding wins them over another daemon's
 * wildcard socket). Both use SO_REUSEADDR so several ArcBox daemons on one host can
 * each run a server; each answers only its own clients' MACs.
 */
import dgram from "node:dgram";

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;

export class DhcpSockets {
  private sockets: dgram.Socket[] = [];
  private boundTo: string | undefined;

  get listening(): string | undefined {
    return this.boundTo;
  }

  /** Opens both sockets (idempotent for the same gateway). */
  async open(gateway: string, onMessage: (msg: Uint8Array) => void, onError: (err: Error) => void): Promise<void> {
    if (this.boundTo === gateway) return;
    this.close();
    try {
      for (const addr of ["0.0.0.0", gateway]) {
        const s = dgram.createSocket({ type: "udp4", reuseAddr: true });
        this.sockets.push(s);
        s.on("message", (msg) => onMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength)));
        await new Promise<void>((resolve, reject) => {
          s.once("error", reject);
          s.bind(DHCP_SERVER_PORT, addr, () => {
            s.off("error", reject);
            s.on("error", onError);
            resolve();
          });
        });
        s.setBroadcast(true);
      }
      this.boundTo = gateway;
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** Sends from the wildcard socket: the route to `to` (the subnet broadcast or a client) picks the bridge. */
  send(msg: Uint8Array, to: string): void {
    this.sockets[0]?.send(msg, DHCP_CLIENT_PORT, to);
  }

  close(): void {
    for (const s of this.sockets) s.close();
    this.sockets = [];
    this.boundTo = undefined;
  }
}
