/**
 * Options over defaults. `{ ...defaults, ...o }` lets an explicit `undefined` (a CLI flag left out)
 * erase the default; here an undefined value keeps it.
 */
export function withDefaults<D extends object, O extends object>(defaults: D, o: O): D & O {
  const out = { ...defaults } as Record<string, unknown>;
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as D & O;
}
