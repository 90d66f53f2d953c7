/**
 * The options roles share, declared once: logging (every role), the Prometheus endpoint (every
 * role, each with its own default port), and TLS (a server's certificate and key; the CA its
 * clients trust). Each table comes with the function that resolves it into the role's config.
 *
 * Logs are one JSON object a line (`util/log.ts`), to stderr by default or appended to a file,
 * written synchronously so that the lines before a crash are in it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createLogger, type Logger, type LogLevel, type OptionTable, type OptionValues } from '../util/index.js';
import { checkTlsOptions } from '../wire/index.js';

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

/** The Prometheus endpoint's options, with the role's default port (-1: off by default). */
export function metricsOptions(defaultPort: number) {
  return {
    'metrics-host': { type: 'string', default: '127.0.0.1', description: 'host of the Prometheus endpoint' },
    'metrics-port': { type: 'number', default: defaultPort, min: -1, max: 65535, env: 'AQ_METRICS_PORT', description: 'port of /metrics (0 picks one, -1 disables)' },
  } as const satisfies OptionTable;
}

/** Where a role serves its metrics. */
export interface MetricsConfig {
  metricsHost: string;
  /** 0 picks a port; -1: no endpoint. */
  metricsPort: number;
}

/** The resolved metrics options. */
export function metricsConfigOf(o: OptionValues<ReturnType<typeof metricsOptions>>): MetricsConfig {
  return { metricsHost: o['metrics-host'], metricsPort: o['metrics-port'] };
}

/** TLS of a role's gRPC server. */
export const SERVER_TLS_OPTIONS = {
  'tls-cert': { type: 'string', default: '', env: 'AQ_TLS_CERT', description: 'PEM certificate (chain) of this node\'s gRPC server; with --tls-key, the server speaks TLS only' },
  'tls-key': { type: 'string', default: '', env: 'AQ_TLS_KEY', description: 'PEM private key of --tls-cert' },
} as const satisfies OptionTable;

/** TLS of a role's clients. */
export const CLIENT_TLS_OPTIONS = {
  'tls-ca': { type: 'string', default: '', env: 'AQ_TLS_CA', description: 'PEM CA certificate this node\'s clients trust; given, they connect with TLS only' },
} as const satisfies OptionTable;

/** A server's certificate and key, absolute ('' : plaintext). */
export interface ServerTlsConfig {
  tlsCert: string;
  tlsKey: string;
}

/** The CA a role's clients trust, absolute ('' : plaintext). */
export interface ClientTlsConfig {
  tlsCa: string;
}

const resolved = (file: string) => (file ? path.resolve(file) : '');

/** The resolved server TLS options, checked (both or neither; files readable). */
export function serverTlsOf(o: OptionValues<typeof SERVER_TLS_OPTIONS>): ServerTlsConfig {
  checkTlsOptions(o['tls-cert'], o['tls-key'], '');
  return { tlsCert: resolved(o['tls-cert']), tlsKey: resolved(o['tls-key']) };
}

/** The resolved client TLS option, checked. */
export function clientTlsOf(o: OptionValues<typeof CLIENT_TLS_OPTIONS>): ClientTlsConfig {
  checkTlsOptions('', '', o['tls-ca']);
  return { tlsCa: resolved(o['tls-ca']) };
}
