/**
 * One way to declare a role's options: a table of flags with types, defaults, environment
 * variables and help. `parseOptions` reads a JSON config file (`--config`), then environment,
 * then flags (later wins) and refuses unknown or malformed values naming the flag. Only the
 * roles' `config.ts` files call it, passing `process.env`.
 */
import fs from 'node:fs';
import { ConfigError } from '../errors.js';

/** One option. */
export interface OptionSpec {
  type: 'string' | 'number' | 'boolean';
  description: string;
  default?: string | number | boolean;
  /** Environment variable that sets it. */
  env?: string;
  /** For numbers: inclusive bounds. */
  min?: number;
  max?: number;
  /** For strings: allowed values. */
  choices?: readonly string[];
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;
export type OptionValues<T extends OptionTable> = {
  [K in keyof T]: T[K]['type'] extends 'number' ? number : T[K]['type'] extends 'boolean' ? boolean : string;
};

/** Thrown for `--help`: carries the text to print. */
export class HelpRequested extends Error {
  constructor(readonly text: string) {
    super(text);
  }
}

function coerce(name: string, spec: OptionSpec, raw: unknown): string | number | boolean {
  if (spec.type === 'number') {
    const n = typeof raw === 'number' ? raw : Number(raw);
    if (raw === '' || !Number.isFinite(n)) throw new ConfigError(name, 'a number', JSON.stringify(raw));
    if (spec.min !== undefined && n < spec.min) throw new ConfigError(name, `at least ${spec.min}`, String(n));
    if (spec.max !== undefined && n > spec.max) throw new ConfigError(name, `at most ${spec.max}`, String(n));
    return n;
  }
  if (spec.type === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    if (raw === 'true' || raw === '1' || raw === '') return true;
    if (raw === 'false' || raw === '0') return false;
    throw new ConfigError(name, 'true or false', JSON.stringify(raw));
  }
  const s = String(raw);
  if (spec.choices && !spec.choices.includes(s)) throw new ConfigError(name, `one of ${spec.choices.join(', ')}`, JSON.stringify(s));
  return s;
}

/** Help text listing every option with its default and environment variable. */
export function helpText(usage: string, summary: string, table: OptionTable): string {
  const lines = [`usage: ${usage}`, '', summary, '', 'options:'];
  for (const [name, spec] of Object.entries(table)) {
    const flag = spec.type === 'boolean' ? `--${name}` : `--${name} <${spec.choices ? spec.choices.join('|') : spec.type}>`;
    const extra = [
      spec.default !== undefined && spec.default !== '' ? `default ${JSON.stringify(spec.default)}` : null,
      spec.env ? `env ${spec.env}` : null,
    ].filter(Boolean).join('; ');
    lines.push(`  ${flag}`);
    lines.push(`      ${spec.description}${extra ? ` (${extra})` : ''}`);
  }
  lines.push('  --config <file>', '      JSON file of options (keys are the flag names); flags win over it', '  --help', '      this text');
  return lines.join('\n');
}

/** Parses `argv` (flags only) against `table`. */
export function parseOptions<T extends OptionTable>(
  table: T, argv: readonly string[], env: Readonly<Record<string, string | undefined>>, usage: string, summary: string,
): OptionValues<T> {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') throw new HelpRequested(helpText(usage, summary, table));
    if (!arg.startsWith('--')) throw new ConfigError('(argument)', 'a flag starting with --', JSON.stringify(arg));
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    if (name !== 'config' && !(name in table)) throw new ConfigError(name, `one of the flags in --help`, 'an unknown flag');
    if (eq > 0) flags.set(name, arg.slice(eq + 1));
    else if (name !== 'config' && table[name]!.type === 'boolean' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))) flags.set(name, true);
    else {
      const v = argv[++i];
      if (v === undefined) throw new ConfigError(name, 'a value', 'nothing');
      flags.set(name, v);
    }
  }
  let file: Record<string, unknown> = {};
  const cfg = flags.get('config');
  if (typeof cfg === 'string') {
    try {
      file = JSON.parse(fs.readFileSync(cfg, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError('config', 'a readable JSON file', `${cfg} (${(err as Error).message})`);
    }
    for (const k of Object.keys(file)) if (!(k in table)) throw new ConfigError(k, 'an option named in --help', `key "${k}" in ${cfg}`);
  }
  const out: Record<string, string | number | boolean> = {};
  for (const [name, spec] of Object.entries(table)) {
    let raw: unknown = spec.default;
    if (name in file) raw = file[name];
    if (spec.env && env[spec.env] !== undefined) raw = env[spec.env];
    if (flags.has(name)) raw = flags.get(name);
    if (raw === undefined) throw new ConfigError(name, 'a value', 'nothing');
    out[name] = coerce(name, spec, raw === true && spec.type !== 'boolean' ? '' : raw);
  }
  return Object.freeze(out) as OptionValues<T>;
}
