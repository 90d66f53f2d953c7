/**
 * Small helpers every folder may use: options parsing, structured logs, seeded randomness, long
 * polls, sleeping with a signal, atomic JSON files, bounded maps, and the tsx loader for child
 * processes.
 */
export { HelpRequested, parseOptions, type OptionTable, type OptionValues } from './options.js';
export { Notifier } from './notifier.js';
export { Random } from './random.js';
export { createLogger, type Logger, type LogLevel } from './log.js';
export { sleep, withDeadline, DeadlineError } from './sleep.js';
export { tsxApiUrl, tsxLoaderUrl } from './tsx.js';
export { writeJsonFile } from './json-file.js';
export { lineSink, MAX_PENDING, type LineWriter } from './line-sink.js';
export { watchStalls, type StallWatchOptions } from './stall-watchdog.js';
export { ID_RULE, isId } from './id.js';
export { BoundedMap } from './bounded-map.js';
