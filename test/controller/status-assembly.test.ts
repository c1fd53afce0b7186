// The one status assembly (controller/status/assemble.ts), from real translations of golden
// inputs: bind failures reported for an IR socket reach every listener on it by origin — a
// Gateway's, a ListenerSet's, a TLS passthrough one, a UDP one — and acks and addresses fold in the same pass.
import { describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { assembleStatuses } from '../../controller/status/assemble.ts';
import { MAX_CONDITION_MESSAGE, type Condition, type ObjectStatus } from '../../controller/status/conditions.ts';
import { translate, type TranslateResult } from '../../controller/translate/translate.ts';
import { TRANSLATE_CASES, loadInputs, translateOptionsOf } from '../golden/translate-case.ts';

function translateCase(name: string): TranslateResult {
  const dir = join(TRANSLATE_CASES, name);
  return translate(loadInputs(dir).snapshot, translateOptionsOf(dir));
}

function statusOf(statuses: ObjectStatus[], kind: string, name: string) {
  const found = statuses.find((s) => s.kind === kind && s.name === name);
  if (!found) throw new Error(`no status for ${kind} ${name}`);
  return found.status as { conditions: Condition[]; listeners: { name: string; conditions: Condition[] }[]; addresses?: unknown };
}

const programmed = (conditions: Condition[]) => conditions.find((c) => c.type === 'Programmed');
const listenerProgrammed = (statuses: ObjectStatus[], kind: string, name: string, listener: string) =>
  programmed(statusOf(statuses, kind, name).listeners.find((l) => l.name === listener)!.conditions);

describe('status assembly', () => {
  it('with no feedback, is what translation decided', () => {
    const result = translateCase('ListenerSetAttachment');
    expect(assembleStatuses(result, { socketFailures: [] })).toEqual(result.statuses);
  });

  it('marks a Gateway listener and a ListenerSet listener sharing a socket that failed Programmed=False', () => {
    const result = translateCase('ListenerSetAttachment');
    const [socket] = result.ir.http.listeners;
    expect(socket!.scopes.map((s) => `${s.origin.kind}/${s.origin.name}/${s.origin.sectionName}`)).toEqual(expect.arrayContaining(['Gateway/gw/a', 'ListenerSet/ls-1/b']));
    expect(listenerProgrammed(result.statuses, 'ListenerSet', 'ls-1', 'b')?.status).toBe('True');

    const statuses = assembleStatuses(result, { socketFailures: [{ name: socket!.name, error: 'listen EADDRINUSE' }] });
    for (const [kind, name, listener] of [['Gateway', 'gw', 'a'], ['ListenerSet', 'ls-1', 'b']] as const) {
      expect(listenerProgrammed(statuses, kind, name, listener)).toMatchObject({ status: 'False', reason: 'Invalid', message: 'the dataplane cannot listen: listen EADDRINUSE' });
    }
    // ls-1's other listener was never served (a hostname conflict): nothing of it is served now.
    expect(listenerProgrammed(statuses, 'ListenerSet', 'ls-1', 'a-again')).toMatchObject({ status: 'False', reason: 'HostnameConflict' });
    expect(programmed(statusOf(statuses, 'ListenerSet', 'ls-1').conditions)).toMatchObject({ status: 'False', message: 'no listener of this ListenerSet could be served' });
    // The route status and objects on other sockets are left alone.
    expect(statuses.filter((s) => s.kind === 'HTTPRoute')).toEqual(result.statuses.filter((s) => s.kind === 'HTTPRoute'));
  });

  it('marks a TLS passthrough listener whose socket failed Programmed=False', () => {
    const result = translateCase('TLSRoutePassthrough');
    const passthrough = result.ir.http.passthrough![0]!;
    expect(listenerProgrammed(result.statuses, 'Gateway', 'tls', 'passthrough')?.status).toBe('True');

    const statuses = assembleStatuses(result, { socketFailures: [{ name: passthrough.name, error: 'listen EACCES' }] });
    expect(listenerProgrammed(statuses, 'Gateway', 'tls', 'passthrough')).toMatchObject({ status: 'False', message: 'the dataplane cannot listen: listen EACCES' });
  });

  it('marks the UDP listener whose socket failed Programmed=False, and not the TCP listener on the same port number', () => {
    const result = translateCase('TCPRouteUDPRoute');
    const udp = result.ir.http.udp!.find((s) => s.origin.sectionName === 'udp')!;
    expect(udp.name).toBe('udp/127.0.0.1:9000');
    const statuses = assembleStatuses(result, { socketFailures: [{ name: udp.name, error: 'bind EADDRINUSE' }] });
    expect(listenerProgrammed(statuses, 'Gateway', 'l4', 'udp')).toMatchObject({ status: 'False', message: 'the dataplane cannot listen: bind EADDRINUSE' });
    expect(listenerProgrammed(statuses, 'Gateway', 'l4', 'tcp')?.status).toBe('True');
  });

  it('a failure on a socket the IR does not have changes nothing', () => {
    const result = translateCase('TLSRoutePassthrough');
    expect(assembleStatuses(result, { socketFailures: [{ name: '127.0.0.1:1', error: 'gone' }] })).toEqual(result.statuses);
  });

  it('holds Gateways and ListenerSets at Pending until every connected dataplane acknowledged the version', () => {
    const result = translateCase('ListenerSetAttachment');
    const acks = [
      { name: 'dp-a', connected: true, appliedVersion: result.ir.version },
      { name: 'dp-b', connected: true, appliedVersion: 'older' },
    ];
    const pending = assembleStatuses(result, { socketFailures: [], acks });
    expect(programmed(statusOf(pending, 'Gateway', 'gw').conditions)).toMatchObject({ status: 'False', reason: 'Pending' });
    expect(listenerProgrammed(pending, 'ListenerSet', 'ls-1', 'b')).toMatchObject({ status: 'False', reason: 'Pending', message: expect.stringContaining('dp-b') });

    const applied = assembleStatuses(result, { socketFailures: [], acks: acks.map((a) => ({ ...a, appliedVersion: result.ir.version })) });
    expect(applied).toEqual(result.statuses);
  });

  it('names a version a dataplane refused (Programmed=False Invalid), and is Programmed again once a later version is served everywhere', () => {
    const result = translateCase('ListenerSetAttachment');
    const v = result.ir.version;
    const error = `SLU_VERSION_REJECTED version ${v} was not applied (bad regex); still serving good-1`;
    const acks = [
      { name: 'dp-a', connected: true, appliedVersion: v, lastAck: { version: v, ok: true } },
      { name: 'dp-b', connected: true, appliedVersion: 'good-1', lastAck: { version: v, ok: false, error } },
      { name: 'dp-c', connected: true, appliedVersion: 'good-1', lastAck: { version: 'good-1', ok: true } },
    ];
    const refused = assembleStatuses(result, { socketFailures: [], acks });
    const expected = {
      status: 'False',
      reason: 'Invalid',
      message: `dataplane dp-b did not apply version ${v} (${error}); it serves good-1; waiting for dataplanes to apply version ${v}: dp-c`,
    };
    expect(programmed(statusOf(refused, 'Gateway', 'gw').conditions)).toMatchObject(expected);
    expect(listenerProgrammed(refused, 'ListenerSet', 'ls-1', 'b')).toMatchObject(expected);
    // Accepted is translation's verdict: a refused version says nothing about it.
    expect(statusOf(refused, 'Gateway', 'gw').conditions.find((c) => c.type === 'Accepted')).toEqual(
      statusOf(result.statuses, 'Gateway', 'gw').conditions.find((c) => c.type === 'Accepted'),
    );

    // A version that ended the workers is refused alike.
    const crashed = acks.map((a) => (a.name === 'dp-b' ? { ...a, lastAck: { version: v, ok: false, error: `SLU_VERSION_CRASHED version ${v} ended its workers 3 times in a row` } } : a));
    expect(programmed(statusOf(assembleStatuses(result, { socketFailures: [], acks: crashed }), 'Gateway', 'gw').conditions)).toMatchObject({ reason: 'Invalid', message: expect.stringContaining('SLU_VERSION_CRASHED') });

    // A failed ack that is no refusal (an apply still running late) stays Pending, named.
    const late = acks.map((a) => (a.name === 'dp-b' ? { ...a, lastAck: { version: v, ok: false, error: `no worker applied version ${v}: worker 0: timed out` } } : a));
    expect(programmed(statusOf(assembleStatuses(result, { socketFailures: [], acks: late }), 'Gateway', 'gw').conditions)).toMatchObject({ reason: 'Pending', message: expect.stringContaining('dp-b did not apply') });

    // An older version's refusal is not this version's: dp-b just has not applied it yet.
    const older = acks.map((a) => (a.name === 'dp-b' ? { ...a, lastAck: { version: 'bad-0', ok: false, error: 'SLU_VERSION_REJECTED bad-0' } } : a));
    expect(programmed(statusOf(assembleStatuses(result, { socketFailures: [], acks: older }), 'Gateway', 'gw').conditions)).toMatchObject({ reason: 'Pending', message: `waiting for dataplanes to apply version ${v}: dp-b, dp-c` });

    const served = acks.map((a) => ({ ...a, appliedVersion: v, lastAck: { version: v, ok: true } }));
    expect(assembleStatuses(result, { socketFailures: [], acks: served })).toEqual(result.statuses);
  });

  it('cuts a condition message at the CRDs\' 32 768-character bound (a longer one fails the whole status write)', () => {
    const result = translateCase('ListenerSetAttachment');
    const v = result.ir.version;
    // 200 dataplanes refusing with a long compile error: far beyond the bound.
    const error = `SLU_VERSION_REJECTED ${'x'.repeat(400)}`;
    const acks = Array.from({ length: 200 }, (_, i) => ({ name: `dp-${i}`, connected: true, appliedVersion: 'good-1', lastAck: { version: v, ok: false, error } }));
    const message = programmed(statusOf(assembleStatuses(result, { socketFailures: [], acks }), 'Gateway', 'gw').conditions)!.message;
    expect(message).toHaveLength(MAX_CONDITION_MESSAGE);
    expect(message.startsWith(`dataplane dp-0 did not apply version ${v}`)).toBe(true);
    expect(message.endsWith('(cut to the condition message bound)')).toBe(true);
  });

  it('reports the dataplane Service addresses, and no Programmed Gateway while it has none', () => {
    const result = translateCase('TLSRoutePassthrough');
    const withAddress = assembleStatuses(result, { socketFailures: [], service: { name: 'sluice/dataplane', addresses: [{ type: 'IPAddress', value: '192.0.2.7' }] } });
    expect(statusOf(withAddress, 'Gateway', 'tls').addresses).toEqual([{ type: 'IPAddress', value: '192.0.2.7' }]);
    const without = assembleStatuses(result, { socketFailures: [], service: { name: 'sluice/dataplane', addresses: [] } });
    expect(programmed(statusOf(without, 'Gateway', 'tls').conditions)).toMatchObject({ status: 'False', reason: 'AddressNotAssigned' });
  });
});
