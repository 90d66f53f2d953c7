/**
 * What every node role shares: its hotkey options and identity, registering with the
 * coordinator and heartbeating, and admission of callers (allowlist or metagraph).
 */
export { AllowlistAdmission, AnyAdmission, MetagraphAdmission } from './admission.js';
export { HOTKEY_OPTIONS, hotkeySourceOf, nodeIdentity } from './hotkey-options.js';
export { keepRegistered } from './registration.js';
export { LOG_OPTIONS, logConfigOf, roleLogger, type LogConfig } from './log-options.js';
