/**
 * What every node role shares: its hotkey options and identity, registering with the
 * coordinator and heartbeating, and admission of callers (allowlist or metagraph).
 */
export { AllowlistAdmission, AnyAdmission, MetagraphAdmission } from './admission.js';
export { HOTKEY_OPTIONS, hotkeySourceOf, SESSION_KEY_OPTIONS, nodeIdentity } from './hotkey-options.js';
export { keepRegistered } from './registration.js';
export {
  CLIENT_TLS_OPTIONS, clientTlsOf, DISCOVERY_OPTIONS, discoveryOf, LOG_OPTIONS, logConfigOf, metricsConfigOf, metricsOptions, roleLogger, SERVER_TLS_OPTIONS, serverTlsOf,
  type ClientTlsConfig, type DiscoveryConfig, type LogConfig, type MetricsConfig, type ServerTlsConfig,
} from './role-options.js';
export { chooseValidators, ValidatorWatch, type Validator, type ValidatorWatchOptions } from './discovery.js';
