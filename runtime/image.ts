// Placeholder until the helper's branch (runtime-image) merges: only what runtime/bundle needs.
export function argmaxLabels(logits: ArrayLike<number>, k: number): Uint8Array {
  const n = logits.length / k, out = new Uint8Array(n);
  for (let p = 0; p < n; p++) { let a = 0; for (let c = 1; c < k; c++) if (logits[p * k + c] > logits[p * k + a]) a = c; out[p] = a; }
  return out;
}
