// A Dataplane for tests: its own metrics registry and a logger whose lines tests can read.

import pino from 'pino';
import { Registry } from 'prom-client';
import { Dataplane } from '../../../dataplane/dataplane.ts';

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface TestDataplane {
  dataplane: Dataplane;
  registry: Registry;
  logs: LogLine[];
}

export function capturingLogger(): { logger: pino.Logger; logs: LogLine[] } {
  const logs: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  return { logger, logs };
}

export function testDataplane(options: { portOffset?: number } = {}): TestDataplane {
  const registry = new Registry();
  const { logger, logs } = capturingLogger();
  const dataplane = new Dataplane({ ...options, logger, registry });
  return { dataplane, registry, logs };
}
