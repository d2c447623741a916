/**
 * The bridge driver's options (`com.docker.network.*`), checked as dockerd parses them:
 * a value that does not parse is refused with dockerd's wording; options the driver
 * does not know are kept and shown, as Docker does.
 */
import { parseIp } from "./ipv4.ts";
import { NetworkError } from "./network-error.ts";

export const BRIDGE_NAME_OPT = "com.docker.network.bridge.name";
export const MTU_OPT = "com.docker.network.driver.mtu";
export const ICC_OPT = "com.docker.network.bridge.enable_icc";
export const MASQUERADE_OPT = "com.docker.network.bridge.enable_ip_masquerade";
export const HOST_BINDING_OPT = "com.docker.network.bridge.host_binding_ipv4";

/** Go's strconv.ParseBool. */
function parseGoBool(v: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(v)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(v)) return false;
  return undefined;
}

const unparsable = (key: string, v: string, why: string) => new NetworkError("invalid_argument", `failed to parse ${key} value: ${v} (${why})`);

export function validateBridgeOptions(opts: Record<string, string>): void {
  const mtu = opts[MTU_OPT];
  if (mtu !== undefined) {
    if (!/^[+-]?\d+$/.test(mtu)) throw unparsable(MTU_OPT, mtu, `strconv.Atoi: parsing ${JSON.stringify(mtu)}: invalid syntax`);
    // dockerd takes any number and fails later, when the veth is made; refused here up front.
    if (Number(mtu) < 68 || Number(mtu) > 65535) throw new NetworkError("invalid_argument", `invalid MTU ${mtu}: it must be a number from 68 to 65535`);
  }
  for (const key of [ICC_OPT, MASQUERADE_OPT]) {
    const v = opts[key];
    if (v !== undefined && parseGoBool(v) === undefined) throw unparsable(key, v, `strconv.ParseBool: parsing ${JSON.stringify(v)}: invalid syntax`);
  }
  const bind = opts[HOST_BINDING_OPT];
  if (bind !== undefined && bind !== "") {
    if (parseIp(bind) === undefined) {
      // An IPv6 address parses for dockerd; ArcBox publishes ports on IPv4 only.
      if (bind.includes(":")) throw new NetworkError("invalid_argument", `${HOST_BINDING_OPT} ${bind}: only IPv4 addresses are supported`);
      throw unparsable(HOST_BINDING_OPT, bind, "nil ip");
    }
  }
}

/** A boolean option as the driver reads it (validated at create), or its default. */
export function boolOption(opts: Record<string, string>, key: string, dflt: boolean): boolean {
  const v = opts[key];
  return v === undefined ? dflt : (parseGoBool(v) ?? dflt);
}
