// The agent's pure parts, no kernel needed: byte layouts, port blocks, the
// weighted Maglev table, stable ids and the order maps are written in.
import { describe, expect, it } from '@jest/globals';
import { LAYOUT, checkCodec, decodeFlowEvent, ipcacheKey, policyKey, portBlocks, svcKey, type FlowEvent } from '../../bpf/agent/codec.ts';
import { FlowContext } from '../../bpf/agent/flows.ts';
import { flowMatches, type Flow } from '../../ir/flow.ts';
import type { L4IR, L4Policy, L4Service } from '../../ir/types.ts';
import { MAP_ORDER, desiredState, stableIds, type ManagedMap } from '../../bpf/agent/desired.ts';
import { reconcileMaps, reconcileOrRestore, type MapHandle, type MapOps } from '../../bpf/agent/reconcile.ts';
import { maglevQuotas, maglevTable } from '../../bpf/agent/maglev.ts';

describe('codec', () => {
  it('writes addresses and ports in network byte order with zeroed padding', () => {
    expect(svcKey('10.96.0.10', 80, 'TCP').toString('hex')).toBe('0a60000a00500600');
    expect(ipcacheKey('10.1.2.3/8').toString('hex')).toBe('080000000a000000');
  });

  it('puts the prefix length over the fixed part, protocol and port bits', () => {
    const any = policyKey({ local: 1, remote: 8, direction: 0, proto: 0, port: 0, portBits: 0 });
    expect(any.readUInt32LE(0)).toBe(72);
    const port = policyKey({ local: 1, remote: 8, direction: 1, proto: 6, port: 8080, portBits: 16 });
    expect(port.toString('hex')).toBe('600000000100000008000000' + '01061f90');
  });

  it('covers a port range with the fewest aligned blocks', () => {
    expect(portBlocks(80, 80)).toEqual([{ port: 80, portBits: 16 }]);
    expect(portBlocks(1024, 2047)).toEqual([{ port: 1024, portBits: 6 }]);
    expect(portBlocks(0, 65535)).toEqual([{ port: 0, portBits: 0 }]);
    const blocks = portBlocks(8000, 8100);
    const covered = blocks.flatMap((b) => Array.from({ length: 2 ** (16 - b.portBits) }, (_, i) => b.port + i));
    expect(covered).toEqual(Array.from({ length: 101 }, (_, i) => 8000 + i));
    expect(() => portBlocks(10, 9)).toThrow('bad port range');
  });

  it('reports every difference from the object BTF', () => {
    const btf = Object.fromEntries(Object.entries(LAYOUT).map(([name, l]) => [name, {
      size: l.size,
      members: Object.entries(l.members).map(([m, off]) => ({ name: m, offsetBits: off * 8 })),
    }]));
    expect(checkCodec(btf)).toEqual([]);
    btf.sl_svc_val = { size: 12, members: btf.sl_svc_val!.members.filter((m) => m.name !== 'mode') };
    delete btf.sl_config;
    expect(checkCodec(btf)).toEqual([
      'struct sl_svc_val: size 12 in BTF, 8 in the agent',
      'struct sl_svc_val: member mode is missing from BTF',
      'struct sl_config is missing from the object\'s BTF',
    ]);
  });

  it('decodes a flow event', () => {
    const b = Buffer.alloc(56);
    b.writeBigUInt64LE(123n, 0);
    Buffer.from([10, 201, 1, 2]).copy(b, 20);
    Buffer.from([10, 96, 0, 20]).copy(b, 24);
    b.writeUInt16BE(8080, 30);
    b.writeUInt16BE(80, 32);
    b.writeUInt8(6, 34);
    b.writeUInt8(1, 35);
    b.writeUInt8(1, 36);
    b.writeUInt32LE(8, 40);
    b.writeUInt32LE(1000, 44);
    b.writeUInt32LE(2, 48);
    expect(decodeFlowEvent(b)).toMatchObject({
      tsNs: 123n, srcIp: '0.0.0.0', dstIp: '10.201.1.2', vip: '10.96.0.20', dstPort: 8080, vipPort: 80,
      proto: 6, verdict: 'DROPPED', reason: 'POLICY_DENY', hook: 'connect4', direction: 'ingress', srcId: 8, dstId: 1000, ruleId: 2,
    });
  });

  it('names the Pod of an address the ipcache names, so --to-pod finds kernel records', () => {
    const context = new FlowContext();
    const policy: L4Policy = {
      identities: [{ id: 1000, labels: ['k8s:app=api'], namespace: 'shop' }],
      ipcache: [{ cidr: '10.201.1.2/32', identity: 1000, pod: 'shop/api-0' }, { cidr: '10.201.1.3/32', identity: 1000 }],
      enforcement: [], rules: [], entries: [],
    };
    context.update({ services: [], policy });
    const event: FlowEvent = {
      tsNs: 1n, cookie: 0n, srcIp: '10.0.0.1', dstIp: '10.201.1.2', vip: null, srcPort: 40000, dstPort: 8080, vipPort: 0,
      proto: 6, verdict: 'DROPPED', reason: 'DEFAULT_DENY', hook: 'connect4', direction: 'ingress', srcId: 8, dstId: 1000, ruleId: 0,
    };
    const named = context.record(event, 0);
    expect(named.destination).toMatchObject({ ip: '10.201.1.2', pod: 'shop/api-0', namespace: 'shop' });
    expect(named.source.pod).toBeUndefined();
    const matches = (flow: Flow, toPod: string) => flowMatches(flow, { toPod: [toPod] }, () => true);
    expect(matches(named, 'shop/api-0')).toBe(true);
    expect(matches(named, 'api-')).toBe(true);
    expect(matches(named, 'web')).toBe(false);
    // An address without a Pod: no name, and no --to-pod filter takes it.
    expect(matches(context.record({ ...event, dstIp: '10.201.1.3' }, 0), 'api-')).toBe(false);
  });
});

describe('weighted Maglev', () => {
  const count = (t: Uint32Array) => {
    const m = new Map<number, number>();
    for (const x of t) m.set(x, (m.get(x) ?? 0) + 1);
    return Object.fromEntries(m);
  };

  it('gives each backend exactly its share of the 1021 slots', () => {
    expect(count(maglevTable([{ id: 1, key: 'a', weight: 3 }, { id: 2, key: 'b', weight: 1 }]))).toEqual({ 1: 766, 2: 255 });
    expect(maglevQuotas([1, 1, 1])).toEqual([341, 340, 340]);
    expect(maglevQuotas([1000000, 1])).toEqual([1020, 1]);
  });

  it('does not depend on the order backends arrive in', () => {
    const a = [{ id: 1, key: 'x', weight: 1 }, { id: 2, key: 'y', weight: 2 }];
    expect(maglevTable(a)).toEqual(maglevTable([...a].reverse()));
  });

  it('moves few slots of the survivors when a backend goes', () => {
    const ten = Array.from({ length: 10 }, (_, i) => ({ id: i + 1, key: `10.0.1.${i}:80/TCP`, weight: 1 }));
    const before = maglevTable(ten);
    const after = maglevTable(ten.filter((b) => b.id !== 5));
    let moved = 0;
    let kept = 0;
    for (let i = 0; i < before.length; i++) {
      if (before[i] === 5) continue;
      if (before[i] === after[i]) kept++;
      else moved++;
    }
    // The removed backend's ~102 slots are redistributed; of the other ~919, under 10% move.
    expect(moved / (moved + kept)).toBeLessThan(0.1);
  });
});

describe('desired state', () => {
  it('keeps ids stable when unrelated keys come and go', () => {
    const a = stableIds(['10.0.0.1:80/TCP', '10.0.0.2:80/TCP']);
    const b = stableIds(['10.0.0.2:80/TCP', '10.0.0.3:80/TCP']);
    expect(b.get('10.0.0.2:80/TCP')).toBe(a.get('10.0.0.2:80/TCP'));
  });

  it('writes backends before tables before services, and enforcement after the rules', () => {
    expect(MAP_ORDER.indexOf('sl_backends')).toBeLessThan(MAP_ORDER.indexOf('sl_lb_tables'));
    expect(MAP_ORDER.indexOf('sl_lb_tables')).toBeLessThan(MAP_ORDER.indexOf('sl_services'));
    expect(MAP_ORDER.indexOf('sl_policy_allow')).toBeLessThan(MAP_ORDER.indexOf('sl_enforced'));
  });

  it('skips what the kernel side cannot hold and says so', () => {
    const { state, skipped } = desiredState({
      services: [
        { name: 'service/a/v6/port/80', origin: { kind: 'Service', namespace: 'a', name: 'v6' }, vip: 'fd00::1', port: 80, protocol: 'TCP', affinity: 'random', endpoints: [] },
        { name: 'service/a/web/port/80', origin: { kind: 'Service', namespace: 'a', name: 'web' }, vip: '10.96.0.1', port: 80, protocol: 'TCP', affinity: 'random', endpoints: [{ address: 'fd00::2', port: 80, weight: 1 }, { address: '10.0.0.1', port: 80, weight: 1 }] },
      ],
    }, { gatewayCgroups: [], traceForwarded: false });
    expect(skipped).toEqual(['service/a/v6/port/80: VIP fd00::1 is not IPv4', 'service/a/web/port/80: endpoint fd00::2 is not IPv4']);
    expect(state.sl_services.size).toBe(1);
    expect([...state.sl_services.values()][0]!.describe).toContain('1 endpoints');
  });
});

describe('a map write that fails', () => {
  // An in-memory stand-in for the kernel maps: a failing bpf_map_update_elem cannot be provoked on
  // demand for real (the agent's maps hold 64–256 k entries, and pinned maps of another size are not reused).
  const memoryMaps = () => {
    const maps = new Map<number, Map<string, Buffer>>();
    /** `after`: writes that succeed before one fails; `then`: whether every later one fails too. */
    const failing = { after: Infinity, then: false, failed: false };
    const ops: MapOps = {
      mapUpdate(fd, key, value) {
        if (failing.failed ? failing.then : failing.after-- <= 0) {
          failing.failed = true;
          throw Object.assign(new Error('mapUpdate: Argument list too long'), { code: 'E2BIG' });
        }
        maps.get(fd)!.set(key.toString('hex'), Buffer.from(value));
      },
      mapLookup: (fd, key) => maps.get(fd)!.get(key.toString('hex')) ?? null,
      mapDelete: (fd, key) => maps.get(fd)!.delete(key.toString('hex')),
      mapNextKey(fd, key) {
        const keys = [...maps.get(fd)!.keys()].sort();
        const next = key === null ? keys[0] : keys.find((k) => k > key.toString('hex'));
        return next === undefined ? null : Buffer.from(next, 'hex');
      },
    };
    const handles = Object.fromEntries(MAP_ORDER.map((name, fd) => (maps.set(fd, new Map()), [name, { fd, keySize: 0, valueSize: 0 }]))) as Record<ManagedMap, MapHandle>;
    const contents = () => MAP_ORDER.map((name) => [...maps.get(handles[name].fd)!.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v.toString('hex')}`));
    return { ops, handles, contents, failing };
  };
  const service = (vip: string, endpoint: string): L4Service => ({ name: `service/a/${vip}/port/80`, origin: { kind: 'Service', namespace: 'a', name: vip }, vip, port: 80, protocol: 'TCP', affinity: 'random', endpoints: [{ address: endpoint, port: 8080, weight: 1 }] });
  const state = (l4: L4IR) => desiredState(l4, { gatewayCgroups: [{ id: 7n, identity: 8 }], traceForwarded: true }).state;
  const before = state({ services: [service('10.96.0.1', '10.0.0.1'), service('10.96.0.2', '10.0.0.2')] });
  const after = state({ services: [service('10.96.0.1', '10.0.0.9'), service('10.96.0.3', '10.0.0.3')] });
  /** Maps holding `before`, whose next writes fail after `after` succeed. */
  const holdingBefore = (after: number, then: boolean) => {
    const m = memoryMaps();
    reconcileMaps(m.ops, m.handles, before);
    Object.assign(m.failing, { after, then });
    return m;
  };

  it('leaves the maps as the version before held them (new entries taken out, changed ones put back), and says so; the next write is whole', () => {
    const m = holdingBefore(2, false);
    const held = m.contents();
    // Fails midway: new backends written, the tables and services not yet.
    expect(() => reconcileOrRestore(m.ops, m.handles, after, before)).toThrow(/^BPF maps not written \(mapUpdate: Argument list too long\): restored to the version before$/);
    expect(m.contents()).toEqual(held);
    reconcileOrRestore(m.ops, m.handles, after, before);
    const whole = memoryMaps();
    reconcileMaps(whole.ops, whole.handles, after);
    expect(m.contents()).toEqual(whole.contents());
  });

  it('says when the maps could not be put back either', () => {
    // Fails after a changed entry was written (the first VIP's table): going back must write it again, and cannot.
    const m = holdingBefore(3, true);
    expect(() => reconcileOrRestore(m.ops, m.handles, after, before)).toThrow(/^BPF maps not written \(.+\), and not restored \(.+\): they hold part of both until the next version is written whole$/);
  });
});
