// A Dataplane for tests: its own metrics registry and a logger whose lines tests can read.

import pino from 'pino';
import { Registry } from 'prom-client';
import { Dataplane } from '../../../dataplane/dataplane.ts';
import { ConnectionBudget, DEFAULT_FRONT_DOOR_LIMITS, type FrontDoorLimits } from '../../../dataplane/front-door.ts';

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

/** `frontDoor` overrides single defaults (short timeouts, small limits). */
export function testDataplane(options: { portOffset?: number; redirectPortOffset?: number; frontDoor?: Partial<FrontDoorLimits> } = {}): TestDataplane {
  const registry = new Registry();
  const { logger, logs } = capturingLogger();
  const dataplane = new Dataplane({ portOffset: options.portOffset ?? 0, redirectPortOffset: options.redirectPortOffset ?? 0, logger, registry, frontDoor: { ...DEFAULT_FRONT_DOOR_LIMITS, ...options.frontDoor } });
  return { dataplane, registry, logs };
}

/** A connection budget of its own (own registry and logger), for servers built without a Dataplane. */
export function testBudget(frontDoor: Partial<FrontDoorLimits> = {}): ConnectionBudget {
  const { logger } = capturingLogger();
  return new ConnectionBudget({ ...DEFAULT_FRONT_DOOR_LIMITS, ...frontDoor }, new Registry(), logger);
}
