/** The median of a list of numbers (the mean of the middle two for an even count). */
export function median(v: number[]): number {
  const t = [...v].sort((a, b) => a - b);
  return t.length % 2 ? t[(t.length - 1) / 2] : (t[t.length / 2 - 1] + t[t.length / 2]) / 2;
}
