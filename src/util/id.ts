/**
 * The one rule for names the project uses as ids and folder names: job ids, dataset node ids,
 * wallet and hotkey names. Letters, digits, `.`, `_` and `-`, 1 to 64 of them.
 */

/** What an id may be, as error messages say it. */
export const ID_RULE = 'letters, digits, . _ - (1 to 64)';

const ID_PATTERN = /^[\w.-]{1,64}$/;

/** True when `v` is a valid id. */
export function isId(v: unknown): v is string {
  return typeof v === 'string' && ID_PATTERN.test(v);
}
