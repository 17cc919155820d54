/** Flag checks shared by the commands: a bad value is a UserError naming the flag, what it must be, and what was given. */
import { UserError } from '../core/errors';
import { PRECISIONS, RUNTIMES, type Precision, type RuntimeName } from '../runtime/bundle';

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** A numeric flag: undefined when absent, else a number that passes `ok`. */
export function numberFlag(values: Values, flag: string, ok: (n: number) => boolean, what: string): number | undefined {
  const v = values[flag];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !ok(n)) throw new UserError(`--${flag} must be ${what}, got "${String(v)}".`);
  return n;
}

export function intFlag(values: Values, flag: string, min = 1): number | undefined {
  return numberFlag(values, flag, (n) => Number.isInteger(n) && n >= min, `an integer >= ${min}`);
}

/** --runtime and --precision, checked against what runtime/ runs. */
export function runtimeFlags(values: { runtime?: string; precision?: string }): { runtime?: RuntimeName; precision?: Precision } {
  if (values.runtime && !(RUNTIMES as readonly string[]).includes(values.runtime)) throw new UserError(`--runtime must be ${RUNTIMES.join(' or ')}, got "${values.runtime}".`);
  if (values.precision && !(PRECISIONS as readonly string[]).includes(values.precision)) throw new UserError(`--precision must be one of ${PRECISIONS.join(', ')}, got "${values.precision}".`);
  return { runtime: values.runtime as RuntimeName | undefined, precision: values.precision as Precision | undefined };
}
