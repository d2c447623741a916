/** netd's Network message as Docker's `Network` JSON (field names from the Engine API spec). */
import type { Network } from "../../../../proto/gen/arcbox/networks/v1/networks_pb.ts";

export function networkJson(n: Network, withContainers: boolean) {
  const containers: Record<string, unknown> = {};
  if (withContainers) {
    for (const c of n.containers) {
      containers[c.containerId] = { Name: c.name, EndpointID: c.endpointId, MacAddress: c.macAddress, IPv4Address: c.ipv4Address, IPv6Address: c.ipv6Address };
    }
  }
  return {
    Name: n.name,
    Id: n.id,
    Created: n.created,
    Scope: n.scope || "local",
    Driver: n.driver,
    EnableIPv4: n.driver === "bridge",
    EnableIPv6: n.enableIpv6,
    IPAM: {
      Driver: n.ipamDriver || "default",
      Options: Object.keys(n.ipamOptions).length ? n.ipamOptions : null,
      Config: n.ipam.map((p) => ({
        Subnet: p.subnet,
        ...(p.ipRange ? { IPRange: p.ipRange } : {}),
        // A gateway netd chose for a user's subnet is not shown, as in Docker.
        ...(p.implicitGateway ? {} : { Gateway: p.gateway }),
        ...(Object.keys(p.auxAddresses).length ? { AuxiliaryAddresses: p.auxAddresses } : {}),
      })),
    },
    Internal: n.internal,
    Attachable: n.attachable,
    Ingress: false,
    ConfigFrom: { Network: "" },
    ConfigOnly: false,
    Containers: containers,
    Options: n.options,
    Labels: n.labels,
  };
}
