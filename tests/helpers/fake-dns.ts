/**
 * A stand-in for the host's upstream resolver: answers every query with one A record
 * (the question echoed, then a pointer to it), so forwarding can be checked offline.
 */
export async function startFakeUpstreamDns(address: string, answer: [number, number, number, number]): Promise<{ close(): void }> {
  return Bun.udpSocket({
    hostname: address,
    port: 53,
    socket: {
      data(sock, buf, port, addr) {
        const q = new Uint8Array(buf);
        const end = q.indexOf(0, 12) + 5;
        const out = new Uint8Array(end + 16);
        out.set(q.subarray(0, end));
        out.set([0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0], 2);
        out.set([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...answer], end);
        sock.send(out, port, addr);
      },
      error() {},
    },
  });
}
