// The address a connection is counted and logged under. Behind a reverse
// proxy every peer address is the proxy's, so X-Forwarded-For is followed, but
// only through hops listed in --trusted-proxies: the per-address connection
// limit would be worthless if a client could name its own address.

import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/**
 * The set of proxies whose X-Forwarded-For is believed: exact addresses or
 * CIDR ranges ("10.0.0.0/8", "::1"). Throws with the offending entry.
 */
export function parseTrustedProxies(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, prefix] = entry.split('/');
    const family = isIP(address);
    if (family === 0) throw new Error(`"${entry}" is not an IP address or CIDR range`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) {
      list.addAddress(address, type);
      continue;
    }
    const bits = Number(prefix);
    if (!/^\d+$/.test(prefix) || bits > (family === 4 ? 32 : 128)) throw new Error(`"${entry}" has an invalid prefix length`);
    list.addSubnet(address, bits, type);
  }
  return list;
}

/**
 * The address of the client behind `request`: the peer address, or, while
 * that peer is a trusted proxy, the next address to the left in
 * X-Forwarded-For. Entries added by untrusted hops are never believed, so a
 * client cannot pick its own address by sending the header itself.
 */
export function clientAddressOf(request: IncomingMessage, trustedProxies: BlockList): string {
  let address = normalizeAddress(request.socket.remoteAddress ?? 'unknown');
  const header = request.headers['x-forwarded-for'];
  if (header === undefined) return address;
  const hops = (Array.isArray(header) ? header.join(',') : header).split(',').map((hop) => hop.trim()).filter((hop) => hop !== '');
  while (hops.length > 0 && isTrusted(trustedProxies, address)) {
    const next = normalizeAddress(hops.pop()!);
    if (isIP(next) === 0) break;
    address = next;
  }
  return address;
}

function isTrusted(list: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** "::ffff:127.0.0.1" (an IPv4 peer on a dual-stack socket) counts as "127.0.0.1". */
function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
