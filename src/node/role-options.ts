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
import { ConfigError } from '../errors.js';

export const LOG_OPTIONS = {
  'log-level': { type: 'string', default: 'info', choices: ['debug', 'info', 'warn', 'error'], env: 'AQ_LOG_LEVEL', description: 'least severe log level written' },
  'log-file': { type: 'string', default: '', env: 'AQ_LOG_FILE', description: 'append logs to this file instead of writing them to stderr' },
  'log-format': { type: 'string', default: 'auto', choices: ['auto', 'json', 'text'], env: 'AQ_LOG_FORMAT', description: 'json: one JSON object a line; text: readable lines; auto: text on a terminal, json to files and pipes' },
} as const satisfies OptionTable;

/** Where a role's logs go. */
export interface LogConfig {
  logLevel: LogLevel;
  /** Absolute path of the log file ('' : stderr). */
  logFile: string;
  /** auto: text when the lines go to a terminal, else json. */
  logFormat?: 'auto' | 'json' | 'text';
}

/** The resolved logging options. */
export function logConfigOf(o: OptionValues<typeof LOG_OPTIONS>): LogConfig {
  return { logLevel: o['log-level'] as LogLevel, logFile: o['log-file'] ? path.resolve(o['log-file']) : '', logFormat: o['log-format'] as LogConfig['logFormat'] };
}

/** The root logger of a role, writing where `config` says, in the format it asks for. */
export function roleLogger(component: string, config: LogConfig): Logger {
  const want = config.logFormat ?? 'auto';
  const toTerminal = !config.logFile && process.stderr.isTTY === true;
  const format = want === 'auto' ? (toTerminal ? 'text' : 'json') : want;
  if (!config.logFile) return createLogger(component, { level: config.logLevel, format });
  fs.mkdirSync(path.dirname(config.logFile), { recursive: true });
  const fd = fs.openSync(config.logFile, 'a');
  return createLogger(component, { level: config.logLevel, format, write: (line) => fs.writeSync(fd, line) });
}

/** The Prometheus endpoint's options, with the role's default port (-1: off by default). */
export function metricsOptions(defaultPort: number) {
  return {
    'metrics-host': { type: 'string', default: '127.0.0.1', description: 'host of the Prometheus endpoint and the status page (/, /status.json)' },
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

/** How a trainer or dataset node finds its validators on chain instead of one --coordinator. */
export const DISCOVERY_OPTIONS = {
  chain: { type: 'string', default: '', env: 'AQ_CHAIN', description: 'subtensor node (ws:// or wss://): work for every validator of --netuid that announces an endpoint (instead of one --coordinator)' },
  netuid: { type: 'number', default: 0, min: 0, max: 65535, env: 'AQ_NETUID', description: 'the subnet whose validators to work for (with --chain)' },
  validators: { type: 'string', default: '', env: 'AQ_VALIDATORS', description: 'with --chain: only these validator hotkeys, comma-separated (empty: all)' },
  'exclude-validators': { type: 'string', default: '', env: 'AQ_EXCLUDE_VALIDATORS', description: 'with --chain: never these validator hotkeys, comma-separated' },
  'metagraph-refresh-s': { type: 'number', default: 60, min: 1, max: 86_400, description: 'with --chain: how often to look for validators that came or went' },
} as const satisfies OptionTable;

/** Resolved discovery options: null without --chain. */
export interface DiscoveryConfig {
  url: string;
  netuid: number;
  pin: string[];
  exclude: string[];
  refreshMs: number;
}

/** Discovery from parsed options (throws ConfigError on a bad URL). */
export function discoveryOf(o: { chain: string; netuid: number; validators: string; 'exclude-validators': string; 'metagraph-refresh-s': number }): DiscoveryConfig | null {
  if (!o.chain) return null;
  if (!/^wss?:\/\//.test(o.chain)) throw new ConfigError('chain', 'a ws:// or wss:// URL', JSON.stringify(o.chain));
  const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
  return { url: o.chain, netuid: o.netuid, pin: list(o.validators), exclude: list(o['exclude-validators']), refreshMs: o['metagraph-refresh-s'] * 1000 };
}
