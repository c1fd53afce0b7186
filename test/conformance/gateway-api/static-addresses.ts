// staticAddressInjection (suite README, "Static addresses"): the runner picks a usable and an
// unusable address, rewrites the named Gateway's spec.addresses as upstream's applier does, and
// substitutes the chosen values for {USABLE_ADDRESS} / {UNUSABLE_ADDRESS} in the case's checks,
// mutations and cases.

import { randomInt } from 'node:crypto';
import net from 'node:net';
import { addressInCidr, parseCidr, parseIPv4 } from '../../../ir/ipv4.ts';
import type { KObject } from '../lib/manifest-store.ts';
import { deepSubstitute } from './traffic.ts';
import type { CaseFile, StaticAddressInjection } from './types.ts';

/** The entries upstream's applier keeps when it overlays addresses. */
export const FAKE_ADDRESS_TYPE = 'test/fake-invalid-type';

export interface StaticAddressValues {
  usable: string;
  unusable: string;
}

/** Can a listener bind `address` here? (EADDRNOTAVAIL: it is on no local interface.) */
export function canBind(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: address, port: 0, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * usable: a 127.0.0.0/8 address other than 127.0.0.1 that binds, outside the --bind-address range
 * (Sluice plans its own Gateway addresses there); unusable: a TEST-NET-1 address (RFC 5737) that
 * does not bind.
 */
export async function chooseStaticAddresses(bindAddress: string): Promise<StaticAddressValues> {
  const range = parseCidr(bindAddress.includes('/') ? bindAddress : `${bindAddress}/32`);
  let usable: string | undefined;
  for (let i = 0; i < 50 && !usable; i++) {
    const candidate = `127.${randomInt(200, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
    const ip = parseIPv4(candidate)!;
    if (range && addressInCidr(ip, range)) continue;
    if (await canBind(candidate)) usable = candidate;
  }
  if (!usable) throw new Error('staticAddressInjection: no bindable 127.0.0.0/8 address found for the usable address');
  let unusable: string | undefined;
  for (let host = 10; host < 60 && !unusable; host++) {
    const candidate = `192.0.2.${host}`;
    if (!(await canBind(candidate))) unusable = candidate;
  }
  if (!unusable) throw new Error('staticAddressInjection: every 192.0.2.10-59 address binds here; none is unusable');
  return { usable, unusable };
}

function addressType(declared: string, value: string): string {
  // Upstream's applier types an entry IPAddress unless its value is not an IP (then Hostname).
  return net.isIP(value) ? declared : 'Hostname';
}

/**
 * Rewrites `gateway.spec.addresses` in place as upstream's applier does: the entries of type
 * test/fake-invalid-type are kept, then one entry for the unusable address (when its placeholder
 * was there), then one for the usable one; everything else (the placeholders) is dropped.
 * Returns problems: the Gateway lacks a placeholder, or the result differs from `resultOrder`.
 */
export function injectStaticAddresses(gateway: KObject, inj: StaticAddressInjection, values: StaticAddressValues): string[] {
  const list: { type?: string; value?: string }[] = Array.isArray(gateway.spec?.addresses) ? gateway.spec.addresses : [];
  const has = (placeholder: string) => list.some((a) => a?.value === placeholder);
  const out: { type: string; value: string }[] = list.filter((a) => a?.type === FAKE_ADDRESS_TYPE).map((a) => ({ type: FAKE_ADDRESS_TYPE, value: a.value ?? '' }));
  const problems: string[] = [];
  for (const which of ['unusable', 'usable'] as const) {
    if (has(inj.placeholders[which])) out.push({ type: addressType(inj[which].type, values[which]), value: values[which] });
    else problems.push(`staticAddressInjection: Gateway ${inj.gateway} has no spec.addresses entry ${inj.placeholders[which]}`);
  }
  gateway.spec = { ...(gateway.spec ?? {}), addresses: out };
  const expected = substituteStaticAddresses(inj.resultOrder, inj, values);
  if (JSON.stringify(out) !== JSON.stringify(expected.map((a) => ({ type: a.type, value: a.value })))) {
    problems.push(`staticAddressInjection: spec.addresses became ${JSON.stringify(out)}, resultOrder says ${JSON.stringify(expected)}`);
  }
  return problems;
}

/** `value` with {USABLE_ADDRESS} / {UNUSABLE_ADDRESS} (the injection's `substitutes`) replaced. */
export function substituteStaticAddresses<T>(value: T, inj: StaticAddressInjection, values: StaticAddressValues): T {
  return deepSubstitute(value, (s) => s.replaceAll(inj.usable.substitutes, values.usable).replaceAll(inj.unusable.substitutes, values.unusable));
}

/** The case file with the chosen values in its checks, cases and follow-ups (the injection itself untouched). */
export function caseWithStaticAddresses(tc: CaseFile, values: StaticAddressValues): CaseFile {
  const inj = tc.staticAddressInjection;
  if (!inj) return tc;
  const { staticAddressInjection, ...rest } = tc;
  return { ...substituteStaticAddresses(rest, inj, values), staticAddressInjection };
}
