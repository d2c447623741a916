/** netd's domain records: networks, endpoints and container attachments (persisted as JSON rows). */

export interface IpamPool {
  subnet: string;
  gateway: string;
  ipRange?: string;
  auxAddresses?: Record<string, string>;
  /** A user subnet without a gateway: netd chose it (Docker's inspect does not show it). */
  implicitGateway?: boolean;
}

export interface NetworkRecord {
  id: string;
  name: string;
  /** "bridge", "host" or "null". */
  driver: string;
  created: string;
  /** Unix seconds, for prune's "until". */
  createdUnix: number;
  internal: boolean;
  attachable: boolean;
  enableIpv6: boolean;
  ipamDriver: string;
  ipamOptions: Record<string, string>;
  /** IPv4 pools (the first one is used). */
  pools: IpamPool[];
  /** The IPv6 pool (at most one); addresses come from it only when enableIpv6. Absent in old records. */
  pools6?: IpamPool[];
  options: Record<string, string>;
  labels: Record<string, string>;
  /** Linux bridge (bridge driver only). */
  bridge: string;
  /** Predefined networks (bridge, host, none) cannot be removed. */
  builtin: boolean;
  /** Default bridge: no embedded DNS, no aliases, host resolvers. */
  isDefault: boolean;
}

export interface EndpointRecord {
  containerId: string;
  networkId: string;
  endpointId: string;
  ip: string;
  prefixLen: number;
  gateway: string;
  mac: string;
  aliases: string[];
  /** IPv6 address on an IPv6 network ("" or absent otherwise). */
  ip6?: string;
  prefixLen6?: number;
  gateway6?: string;
  /** Extra link-local addresses (EndpointSettings.IPAMConfig.LinkLocalIPs). */
  linkLocalIps?: string[];
  /** Legacy links on a user network ("container:alias"), resolved by the embedded DNS for this endpoint only. */
  links?: string[];
  /** Host end of the veth pair. */
  veth: string;
  /** Interface name inside the container (eth0, eth1...). */
  ifname: string;
}

export interface PortRecord {
  protocol: "tcp" | "udp";
  containerPort: number;
  hostIp: string;
  hostPort: number;
}

export interface PendingEndpoint {
  network: string;
  aliases: string[];
  ipv4Address: string;
  macAddress: string;
  ipv6Address?: string;
  linkLocalIps?: string[];
  links?: string[];
}

export interface AttachmentRecord {
  containerId: string;
  containerName: string;
  hostname: string;
  domainname: string;
  /** "bridge-like" (netns + endpoints), "host", "none", or "container". */
  kind: "netns" | "host" | "none" | "container";
  /** For kind "container": the container whose namespace is shared. */
  sharedWith: string;
  netnsName: string;
  netnsPath: string;
  hostsPath: string;
  resolvConfPath: string;
  hostnamePath: string;
  ports: PortRecord[];
  extraHosts: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
}

/** A host port forwarded to a machine (kernel DNAT, like a published port). */
export interface MachinePortRecord {
  protocol: "tcp" | "udp";
  /** Port inside the machine. */
  port: number;
  hostPort: number;
  /** "" = every host address. */
  hostIp: string;
}

/** A machine's place on the machine bridge: its TAP, stable MAC and reserved address. */
export interface MachineLeaseRecord {
  machine: string;
  mac: string;
  ip: string;
  tap: string;
  createdUnix: number;
  /** Hostname the DHCP client last sent (option 12), "" if none. */
  clientHostname: string;
  /** When the DHCP lease handed out last ends (Unix seconds); 0 = not bound. */
  expiresUnix: number;
  ports: MachinePortRecord[];
}

/** The home's machine bridge; exists while at least one machine is attached. */
export interface MachineNetRecord {
  bridge: string;
  /** CIDR, picked from netd's pool like a network's. */
  subnet: string;
  gateway: string;
  /** Second address on the bridge: host.arcbox.internal, DNATed to the host's 127.0.0.1. */
  hostAlias: string;
}
