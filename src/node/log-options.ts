/**
 * The logging options every role shares: how much to log and where. Logs are one JSON object a
 * line (`util/log.ts`); to stderr by default, or appended to a file, written synchronously so
 * that the lines before a crash are in it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createLogger, type Logger, type LogLevel, type OptionTable, type OptionValues } from '../util/index.js';

export const LOG_OPTIONS = {
  'log-level': { type: 'string', default: 'info', choices: ['debug', 'info', 'warn', 'error'], env: 'AQ_LOG_LEVEL', description: 'least severe log level written' },
  'log-file': { type: 'string', default: '', env: 'AQ_LOG_FILE', description: 'append logs to this file instead of writing them to stderr' },
} as const satisfies OptionTable;

/** Where a role's logs go. */
export interface LogConfig {
  logLevel: LogLevel;
  /** Absolute path of the log file ('' : stderr). */
  logFile: string;
}

/** The resolved logging options. */
export function logConfigOf(o: OptionValues<typeof LOG_OPTIONS>): LogConfig {
  return { logLevel: o['log-level'] as LogLevel, logFile: o['log-file'] ? path.resolve(o['log-file']) : '' };
}

/** The root logger of a role, writing where `config` says. */
export function roleLogger(component: string, config: LogConfig): Logger {
  if (!config.logFile) return createLogger(component, { level: config.logLevel });
  fs.mkdirSync(path.dirname(config.logFile), { recursive: true });
  const fd = fs.openSync(config.logFile, 'a');
  return createLogger(component, { level: config.logLevel, write: (line) => fs.writeSync(fd, line) });
}
