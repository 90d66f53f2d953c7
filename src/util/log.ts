/**
 * Structured logs: one JSON object a line on stderr, with time, level, component and fields;
 * or, for a person at a terminal, one readable line each (`text`: time, level, component,
 * message, then key=value fields). Never pass keys, shares, masks or model weights as fields.
 */
import { lineSink } from './line-sink.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A component's logger. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; stderr by default (in bounded memory: `line-sink.ts`). */
  write?: (line: string) => void;
  /** json (the default: files, pipes, log collectors) or text (a terminal). */
  format?: 'json' | 'text';
}

/** A field's value as a text line shows it: bare when it is one plain word, else JSON. */
function shown(v: unknown): string {
  if (typeof v === 'string' && /^[\w.:/@+-]+$/.test(v)) return v;
  return JSON.stringify(v) ?? String(v);
}

/** One readable line: `14:35:02.123 WARN  trainer.t0: register failed; retrying coordinator=... retryMs=250`. */
function textLine(level: LogLevel, component: string, msg: string, fields?: Record<string, unknown>): string {
  const t = new Date().toISOString().slice(11, 23);
  const rest = Object.entries(fields ?? {}).map(([k, v]) => `${k}=${shown(v)}`).join(' ');
  return `${t} ${level.toUpperCase().padEnd(5)} ${component}: ${msg}${rest ? ` ${rest}` : ''}\n`;
}

/** Creates a logger for `component`. */
export function createLogger(component: string, options: LoggerOptions = {}): Logger {
  const min = RANK[options.level ?? 'info'];
  const write = options.write ?? lineSink(2);
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[level] < min) return;
    write(options.format === 'text' ? textLine(level, component, msg, fields) : JSON.stringify({ t: new Date().toISOString(), level, component, msg, ...fields }) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (sub) => createLogger(`${component}.${sub}`, options),
  };
}
