/**
 * Adam with state keyed by the variables' logical names ("f/conv1/w"), so that checkpoints are
 * self-describing and a network joining or leaving training (ADDA's untied target encoder) cannot
 * shift another variable's moments. tf.train.adam keys its slots by position instead.
 */
import * as tf from '../core/tf';

export interface AdamOptions { lr: number; beta1: number; beta2: number; eps?: number }

export class Adam {
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  readonly t = new Map<string, number>();
  constructor(readonly opts: AdamOptions) {}

  /** One update of each named variable by its gradient, at `lrScale` times the base rate (the
   *  schedule's factor). Gradients are not disposed here. */
  apply(updates: { name: string; variable: tf.Variable; grad: tf.Tensor }[], lrScale = 1): void {
    const { beta1, beta2 } = this.opts;
    const lr = this.opts.lr * lrScale;
    const eps = this.opts.eps ?? 1e-8;
    for (const { name, variable, grad } of updates) {
      if (!this.m.has(name)) {
        // tf.variable keeps its own reference: dispose the initial value.
        for (const slot of [this.m, this.v]) {
          const zeros = tf.zerosLike(variable);
          slot.set(name, tf.variable(zeros, false));
          zeros.dispose();
        }
        this.t.set(name, 0);
      }
      const t = this.t.get(name)! + 1;
      this.t.set(name, t);
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      tf.tidy(() => {
        const m1 = tf.add(tf.mul(m, beta1), tf.mul(grad, 1 - beta1));
        const v1 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(grad), 1 - beta2));
        m.assign(m1);
        v.assign(v1);
        const stepSize = lr * Math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t);
        variable.assign(tf.sub(variable, tf.div(tf.mul(m1, stepSize), tf.add(tf.sqrt(v1), eps))));
      });
    }
  }

  /** Slots as named tensors (views of the live variables) plus step counts, for checkpoints. */
  state(): { tensors: Map<string, tf.Tensor>; steps: Record<string, number> } {
    const tensors = new Map<string, tf.Tensor>();
    for (const [k, m] of this.m) {
      tensors.set(`${k}/m`, m);
      tensors.set(`${k}/v`, this.v.get(k)!);
    }
    return { tensors, steps: Object.fromEntries(this.t) };
  }

  load(tensors: Map<string, tf.Tensor>, steps: Record<string, number>): void {
    this.dispose();
    for (const [k, t] of Object.entries(steps)) {
      const m = tensors.get(`${k}/m`);
      const v = tensors.get(`${k}/v`);
      if (!m || !v) throw new Error(`optimiser state for ${k} is incomplete in the checkpoint`);
      this.m.set(k, tf.variable(m, false));
      this.v.set(k, tf.variable(v, false));
      this.t.set(k, t);
    }
  }

  dispose(): void {
    for (const x of this.m.values()) x.dispose();
    for (const x of this.v.values()) x.dispose();
    this.m.clear(); this.v.clear(); this.t.clear();
  }
}

/**
 * The schedule's factor for 0-based `step` of `steps`: 1 until `decayFrom * steps`, then linear to
 * zero, so the last update (step `steps - 1`) is taken at 1/(decay length) of the base rate.
 */
export function learningRateScale(step: number, steps: number, decayFrom: number): number {
  const start = Math.floor(decayFrom * steps);
  if (step < start || start >= steps) return 1;
  return (steps - step) / (steps - start);
}
