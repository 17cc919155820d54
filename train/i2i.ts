/**
 * The I2I Adapt objective (Murez et al., section 3), composed from plain networks.
 *
 *   paper        code
 *   f            encoder (shared by both domains; `fT` is ADDA's untied target encoder)
 *   h            classifier
 *   g_x, g_y     decoders to source / target images; their first two layers are `g_shared`
 *   D_z          featureCritic (least squares)
 *   D_x, D_y     imageCriticX / imageCriticY (WGAN-GP; least squares for Office: model.imageCriticLoss)
 *   L_c          c    cross entropy of h(f(x)) on source labels
 *   L_id         id   |x - g_x(f(x))|_1 + |y - g_y(f(y))|_1      (DRCN: the target's only)
 *   L_z          z    D_z on features; reaches f only through target features f(y)
 *   L_tr         tr   D_y on g_y(f(x)), D_x on g_x(f(y))
 *   L_cyc        cyc  |x - g_x(f(g_y(f(x))))|_1 + |y - g_y(f(g_x(f(y))))|_1   (|.|_1: mean over pixels)
 *   L_trc        trc  cross entropy of h(f(g_y(f(x)))) on x's labels, stopped at the translation
 *   (beyond the paper: self-training, train/self-training.ts)
 *   L_st         st   confidence-weighted cross entropy of h(f(mix)) on ClassMix's labels: the source's
 *                     pasted classes and the EMA teacher's pseudo-labels of the target crop
 *   L_mic        mic  the same on the target crop with patches masked, against the teacher's labels
 *   L_kd         kd   distillation: T^2 KL of a trained run's soft predictions and h(f(y)) on target
 *                     crops at temperature T (train/distill.ts, i2i distill)
 *
 * One step (`step`) reads like the paper's alternation: generators (f, h, g) with critics fixed,
 * then the critics on the detached features and translations of that same forward pass.
 */
import * as tf from '../core/tf';
import { deriveSeed } from '../core/rng';
import { upsampleBilinear } from '../core/upsample';
import { selfTrains, trainsGy, type Config, type TermName } from './config';
import { copyStore, type Mode, type Store } from './models/layers';
import { decoders, featureCritic, imageCritic, pixelFeatureCritic, segmentationDecoders, type Encoder, type ExportNet, type ImageCritic, type Net } from './models/nets';
import { createClassifier, createEncoder } from './models/registry';
import { crossEntropy, gradientPenalty, IMAGE_GAN, l1, lsganCritic, lsganGenerator, weightedCrossEntropy } from './losses';
import { distillationLoss, type DistillTeacher } from './distill';
import { disposePrepared, SelfTraining, type Prepared } from './self-training';
import { Adam, learningRateScale } from './optim';

export interface Batch {
  x: tf.Tensor4D;       // source images
  labels: tf.Tensor;    // source labels (int32): [n] per image, or [n, h, w] per pixel (255 ignored)
  y: tf.Tensor4D;       // target images (labels never used)
}

/** Each term, the total, the critics' losses, and self-training's mean confidence weight `conf`. */
export type Losses = Partial<Record<TermName | 'total' | 'D_z' | 'D_x' | 'D_y' | 'gp' | 'conf', number>>;

/** What a step computes outside the gradient tape for the terms that read other networks' predictions. */
export interface StepInputs {
  /** Self-training's teacher labels, masks and draws (prepareSelfTraining). */
  st?: Prepared;
  /** The distillation teacher's logits on the target batch, at the label maps' size (L_kd). */
  teacherLogits?: tf.Tensor;
}

/** Gradient identity in value, zero in gradient. */
export const stopGradient = tf.customGrad(((x: tf.Tensor) => ({
  value: tf.clone(x),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as <T extends tf.Tensor>(x: T) => T;

/**
 * The objective's revision, recorded in every checkpoint: bumped when the same configuration trains
 * differently, so that benchmarks reuse only runs made by the current code (a checkpoint without
 * it is revision 1). 2: each domain through its own batch statistics in the decoders and the cycle,
 * L_cyc a sum of two means (twice its former scale), ADDA's critic under batch statistics.
 */
export const OBJECTIVE_VERSION = 2;

export class I2IModel {
  readonly f: Encoder;
  fT?: Encoder;
  /** Image logits [n, K], or per-pixel logits at the encoder's output stride [n, h/8, w/8, K]. */
  readonly h: ExportNet<tf.Tensor4D, tf.Tensor>;
  readonly dec?: ReturnType<typeof decoders>;
  readonly Dz?: Net<tf.Tensor4D, tf.Tensor>;
  readonly Dx?: ImageCritic;
  readonly Dy?: ImageCritic;
  /** The EMA teacher and its pseudo-labels, when weights.st or weights.mic asks for them. */
  readonly selfTraining?: SelfTraining;
  /** A trained run whose soft predictions L_kd distils (attachTeacher; training only, owned by the caller). */
  distillTeacher?: DistillTeacher;
  readonly optG: Adam;
  readonly optD: Adam;
  readonly inShape: [number, number, number];

  constructor(readonly config: Config, readonly numClasses: number) {
    const c = config;
    const w = c.weights;
    this.inShape = [c.data.imageSize, c.data.imageSize, c.data.channels];
    const seed = (what: string) => deriveSeed(c.seed, what);
    this.f = createEncoder(c, 'f', seed('f'));
    const seg = c.kind === 'segment';
    const zc = this.f.outShape[2];
    this.h = createClassifier(c, 'h', this.f, numClasses, seed('h'));
    if (w.id + w.tr + w.cyc + w.trc > 0) {
      this.dec = seg ? segmentationDecoders(seed('g'), zc, c.model.decoderWidths, c.data.channels) : decoders(seed('g'), this.f.outShape, this.inShape, c.model.decoderWidths);
    }
    if (w.z > 0) {
      const perPosition = c.model.featureCritic === 'auto' ? seg : c.model.featureCritic === 'conv1x1';
      this.Dz = perPosition ? pixelFeatureCritic('D_z', seed('D_z'), zc, c.model.featureCriticWidths) : featureCritic('D_z', seed('D_z'), this.f.outShape, c.model.featureCriticWidths);
    }
    if (w.tr > 0) {
      this.Dx = imageCritic('D_x', seed('D_x'), this.inShape, c.model.imageCriticWidths);
      this.Dy = imageCritic('D_y', seed('D_y'), this.inShape, c.model.imageCriticWidths);
    }
    if (c.untieTargetEncoder && (this.dec || this.Dx)) throw new Error('an untied target encoder (ADDA) is only supported with L_c and L_z');
    if (selfTrains(c)) {
      this.selfTraining = new SelfTraining(c, numClasses);
      this.resetTeacher();
    }
    this.optG = new Adam(c.optim);
    this.optD = new Adam(c.criticOptim);
  }

  /**
   * h on features. For segmentation the logits are upsampled bilinearly (half-pixel centres, as at
   * test time) to the label map's size, so L_c and L_trc see every labelled pixel. The value is
   * tf.image.resizeBilinear's; the gradient is core/upsample's, the same on every backend.
   */
  classify(z: tf.Tensor4D, mode: Mode, labelHW?: [number, number]): tf.Tensor {
    const logits = this.h.apply(z, mode);
    if (this.config.kind !== 'segment' || !labelHW) return logits;
    return upsampleBilinear(logits as tf.Tensor4D, labelHW);
  }

  /** Every network that exists, in a fixed order: what checkpoints save and restore. */
  networks(): Named[] {
    const nets: (Named | undefined)[] = [this.f, this.fT, this.h, this.dec?.shared, this.dec?.gx, this.dec?.gy, this.Dz, this.Dx, this.Dy, ...this.selfTraining?.teacher.networks() ?? []];
    return nets.filter((n): n is Named => n !== undefined);
  }

  /** The teacher becomes a copy of f and h: at the start, after --init or --from, for a checkpoint saved without one. */
  resetTeacher(): void {
    this.selfTraining?.teacher.copyFrom(this.f.store, this.h.store);
  }

  /**
   * Self-training's source side of the mix: the translated g_y(f(x)) when asked, or by default
   * when a term trains g_y (the mix then pastes target-styled source content).
   */
  pastesTranslation(): boolean {
    const m = this.config.selfTraining.mixSource;
    return this.dec !== undefined && (m === 'translated' || (m === 'auto' && trainsGy(this.config)));
  }

  /**
   * Whether a step makes a target pass for the running statistics only: self-training's passes
   * see mixes and masked crops, and no other term encodes the target batch.
   */
  private targetStatsPass(): boolean {
    return this.selfTraining !== undefined && !this.encodesTarget();
  }

  /** Whether a term of the joint objective encodes the target batch y (with L_id, L_z, L_tr, L_cyc or L_kd). */
  private encodesTarget(): boolean {
    const w = this.config.weights;
    const idTarget = w.id > 0 && this.config.idDomains.includes('target');
    return idTarget || w.z + w.tr + w.cyc + w.kd > 0;
  }

  /** The distillation teacher (weights.kd); the caller keeps and disposes it. */
  attachTeacher(t: DistillTeacher): void {
    this.distillTeacher = t;
  }

  /** The distillation teacher's logits on `b`'s target images, outside any tape (caller disposes). */
  teacherLogits(b: Batch): tf.Tensor | undefined {
    if (!this.distillTeacher || this.config.weights.kd === 0) return undefined;
    const labelHW = b.labels.rank === 3 ? [b.labels.shape[1], b.labels.shape[2]] as [number, number] : undefined;
    return this.distillTeacher.logits(b.y, labelHW);
  }

  /** Self-training's inputs for one step (teacher labels, masks, draws), outside any gradient tape; the caller disposes them. */
  prepareSelfTraining(b: Batch, step: number): Prepared | undefined {
    return this.selfTraining?.prepare(b.y, b.labels, step, this.config.weights.mic > 0);
  }

  critics(): Named[] {
    const nets: (Named | undefined)[] = [this.Dz, this.Dx, this.Dy];
    return nets.filter((n): n is Named => n !== undefined);
  }

  /** ADDA's phase: source pre-training, then adaptation of the untied target encoder. */
  phase(step: number): 'joint' | 'pretrain' | 'adapt' {
    if (!this.config.untieTargetEncoder) return 'joint';
    return step < this.config.pretrainSteps ? 'pretrain' : 'adapt';
  }

  /** ADDA: f_t starts as a copy of f (weights and running statistics). */
  untie(): void {
    if (this.fT) return;
    this.fT = createEncoder(this.config, 'f_t', deriveSeed(this.config.seed, 'f_t'));
    copyStore(this.f.store, this.fT.store);
  }

  /** The encoder that target images go through at test time. */
  targetEncoder(): Encoder {
    return this.fT ?? this.f;
  }

  /** Logits of h(f(images)) with running statistics (inference); per pixel, upsampled to `outHW` if given. */
  predict(images: tf.Tensor4D, domain: 'source' | 'target' = 'target', outHW?: [number, number]): tf.Tensor {
    return tf.tidy(() => this.classify((domain === 'target' ? this.targetEncoder() : this.f).apply(images, 'eval'), 'eval', outHW));
  }

  /**
   * g_x and g_y on one domain's features (g_shared, then each head), computed on first use so a
   * term that needs one image costs one decode. Each call is one batch-norm population; `mode`
   * may differ per part (which pass updates a network's running statistics).
   */
  decodeFrom(z: tf.Tensor4D, mode: Mode | DecodeModes): { toX: () => tf.Tensor4D; toY: () => tf.Tensor4D } {
    const { shared, gx, gy } = this.dec!;
    const m = typeof mode === 'string' ? { trunk: mode, x: mode, y: mode } : mode;
    let t: tf.Tensor4D | undefined, toX: tf.Tensor4D | undefined, toY: tf.Tensor4D | undefined;
    const trunk = () => (t ??= shared.apply(z, m.trunk));
    return { toX: () => (toX ??= gx.head(trunk(), m.x)), toY: () => (toY ??= gy.head(trunk(), m.y)) };
  }

  /**
   * What the image-critic loss scores: one value per image (the patch mean) for WGAN-GP, whose
   * penalty differentiates it per sample; every patch for least squares, as CycleGAN's PatchGAN.
   */
  imageScores(D: ImageCritic, x: tf.Tensor4D): tf.Tensor {
    return IMAGE_GAN[this.config.model.imageCriticLoss].penalty ? D.apply(x, 'train') : D.patches(x, 'train');
  }

  /** Which generator-side networks train in this phase. */
  private generatorStores(phase: 'joint' | 'pretrain' | 'adapt'): Store[] {
    if (phase === 'adapt') return [this.fT!.store];
    if (phase === 'pretrain') return [this.f.store, this.h.store];
    return [this.f, this.h, this.dec?.shared, this.dec?.gx, this.dec?.gy].filter((n) => n !== undefined).map((n) => n!.store);
  }

  /**
   * The generator objective for one batch. Returns the weighted total and each term; `keep`
   * receives the detached quantities the critic step needs (features and translations).
   */
  generatorLoss(b: Batch, phase: 'joint' | 'pretrain' | 'adapt', keep: Kept, inputs: StepInputs = {}): { total: tf.Scalar; terms: Partial<Record<TermName, tf.Scalar>> } {
    const { st, teacherLogits } = inputs;
    const w = this.config.weights;
    const terms: Partial<Record<TermName, tf.Scalar>> = {};
    const labelHW = b.labels.rank === 3 ? [b.labels.shape[1], b.labels.shape[2]] as [number, number] : undefined;
    const ce = (z: tf.Tensor4D, mode: Mode) => crossEntropy(this.classify(z, mode, labelHW), b.labels);

    if (phase === 'pretrain') {
      terms.c = ce(this.f.apply(b.x, 'train'), 'train');
      return { total: tf.mul(terms.c, w.c) as tf.Scalar, terms };
    }
    if (phase === 'adapt') {
      // ADDA: f and h frozen; only f_t learns, through L_z. D_z sees both domains' features under
      // batch statistics (f's own are left alone): with f under running statistics, the critic
      // could tell the domains apart by the normalisation alone.
      const zx = this.f.apply(b.x, 'train-no-stats');
      const zy = this.fT!.apply(b.y, 'train');
      terms.c = ce(zx, 'train-no-stats');
      terms.z = lsganGenerator(this.Dz!.apply(zy, 'train'));
      keep.zx = tf.keep(zx); keep.zy = tf.keep(zy);
      return { total: tf.mul(terms.z, w.z) as tf.Scalar, terms };
    }

    // Target images are encoded only when a term reads them.
    const idTarget = w.id > 0 && this.config.idDomains.includes('target');
    const idSource = w.id > 0 && this.config.idDomains.includes('source');
    const useTarget = this.encodesTarget();
    // f(x) and f(y) are separate passes (f_x = f_y share every weight): with one pass over the
    // concatenated batch, batch-norm statistics would let L_z reach the encoder through x.
    // Every network's running statistics follow the target batches whenever the method sees them:
    // the trained model is deployed on the target domain, and in training target features were
    // normalised by target statistics; a source/target mixture would match neither domain.
    // Self-training alone (no term above encodes y) updates them in step()'s target pass.
    const srcMode: Mode = useTarget || this.targetStatsPass() ? 'train-no-stats' : 'train';
    const zx = this.f.apply(b.x, srcMode);
    const zy = useTarget ? this.f.apply(b.y, 'train') : undefined;
    terms.c = ce(zx, srcMode);

    // Distillation: the target crops' predictions against the teacher's (its logits come from outside the tape).
    if (zy && teacherLogits) terms.kd = distillationLoss(this.classify(zy, 'train', labelHW), teacherLogits, this.config.distill.temperature);

    if (zy && w.z > 0) {
      // Only target features are pulled towards the source distribution.
      terms.z = lsganGenerator(this.Dz!.apply(zy, 'train'));
      keep.zx = tf.keep(zx); keep.zy = tf.keep(zy);
    }

    let src: ReturnType<I2IModel['decodeFrom']> | undefined;
    if (this.dec) {
      // The decoders, like the encoder, normalise each domain by its own batch: a decode of the
      // concatenated features would let a target-only term (DRCN's L_id) reach the source images.
      // Each decoder's running statistics follow its target-domain pass where the step makes one,
      // else its source pass: one update per network and step (they serve only 'eval' decodes).
      const tgtX = w.tr + w.cyc > 0, tgtY = idTarget;
      const own = (updates: boolean): Mode => (updates ? 'train' : 'train-no-stats');
      src = this.decodeFrom(zx, { trunk: own(!tgtX && !tgtY), x: own(!tgtX), y: own(!tgtY) });
      const tgt = zy ? this.decodeFrom(zy, 'train') : undefined;
      if (w.id > 0) {
        const parts: tf.Scalar[] = [];
        if (idSource) parts.push(l1(b.x, src.toX()));
        if (idTarget) parts.push(l1(b.y, tgt!.toY()));
        terms.id = tf.addN(parts) as tf.Scalar;
      }
      if (w.tr > 0) {
        const xToY = src.toY(), yToX = tgt!.toX();
        const gan = IMAGE_GAN[this.config.model.imageCriticLoss];
        terms.tr = tf.add(gan.generator(this.imageScores(this.Dy!, xToY)), gan.generator(this.imageScores(this.Dx!, yToX))) as tf.Scalar;
        keep.xToY = tf.keep(xToY); keep.yToX = tf.keep(yToX);
      }
      if (w.cyc > 0) {
        // Second encoding of each translation on its own (running statistics are not fed fakes);
        // each returns through the decoder of its own domain.
        const backX = this.decodeFrom(this.f.apply(src.toY(), 'train-no-stats'), 'train-no-stats').toX();
        const backY = this.decodeFrom(this.f.apply(tgt!.toX(), 'train-no-stats'), 'train-no-stats').toY();
        terms.cyc = tf.add(l1(b.x, backX), l1(b.y, backY)) as tf.Scalar;
      }
      if (w.trc > 0) {
        // Stop at the translated image: L_trc trains the second encoding and h, not g. With L_cyc
        // on too this is a second encoding of g_y(f(x)): the cycle's must carry g's gradient.
        const zTr = this.f.apply(stopGradient(src.toY()), 'train-no-stats');
        terms.trc = ce(zTr, 'train-no-stats');
      }
    }

    // Self-training's terms need `st` (prepareSelfTraining: the teacher's labels, made outside the tape).
    if (this.selfTraining && st) {
      // Mixes and masked crops are neither domain: each pass normalises by its own batch and leaves
      // the running statistics (which follow target batches) alone.
      const student = (images: tf.Tensor4D) => this.classify(this.f.apply(images, 'train-no-stats'), 'train-no-stats', labelHW);
      if (w.st > 0) {
        // The pasted translation trains f and h here, not g (as L_trc).
        const pasted = this.selfTraining.mixes && this.pastesTranslation() ? stopGradient(src!.toY()) : b.x;
        const m = this.selfTraining.mixed(st, pasted, b.y, b.labels);
        terms.st = weightedCrossEntropy(student(m.image), m.labels, m.weights);
      }
      if (w.mic > 0) terms.mic = weightedCrossEntropy(student(tf.mul(b.y, st.micKeep!) as tf.Tensor4D), st.pseudo, st.weights);
    }

    let total = tf.scalar(0);
    for (const [k, v] of Object.entries(terms) as [TermName, tf.Scalar][]) {
      if (w[k] > 0) total = tf.add(total, tf.mul(v, w[k]));
    }
    return { total: total as tf.Scalar, terms };
  }

  /** The critics' objective on detached features / images; `parts` names each logged value. */
  criticLoss(b: Batch, keep: Kept, eps: tf.Tensor1D): { total: tf.Scalar; parts: Record<string, tf.Scalar> } {
    const losses: tf.Scalar[] = [];
    const parts: Record<string, tf.Scalar> = {};
    if (this.Dz && keep.zx && keep.zy) {
      parts.D_z = lsganCritic(this.Dz.apply(keep.zx, 'train'), this.Dz.apply(keep.zy, 'train'));
      losses.push(parts.D_z);
    }
    // One helper for both image critics: the adversarial term, plus WGAN-GP's gradient penalty.
    const gan = IMAGE_GAN[this.config.model.imageCriticLoss];
    const imageCriticLoss = (tag: 'x' | 'y', D: ImageCritic, real: tf.Tensor4D, fake: tf.Tensor4D) => {
      parts[`D_${tag}`] = gan.critic(this.imageScores(D, real), this.imageScores(D, fake));
      if (!gan.penalty) { losses.push(parts[`D_${tag}`]); return; }
      parts[`gp_${tag}`] = gradientPenalty((x) => D.apply(x, 'train'), real, fake, eps);
      losses.push(tf.add(parts[`D_${tag}`], tf.mul(parts[`gp_${tag}`], this.config.gpWeight)) as tf.Scalar);
    };
    if (this.Dx && keep.yToX) imageCriticLoss('x', this.Dx, b.x, keep.yToX);
    if (this.Dy && keep.xToY) imageCriticLoss('y', this.Dy, b.y, keep.xToY);
    return { total: (losses.length ? tf.addN(losses) : tf.scalar(0)) as tf.Scalar, parts };
  }

  /** One alternating step: generators (critics fixed), then critics. Returns each term's value. */
  step(b: Batch, step: number): Losses {
    const phase = this.phase(step);
    if (phase === 'adapt') this.untie();
    const keep: Kept = {};
    // Logged scalars, kept across both updates and read back once at the end of the step.
    const logged: Record<string, tf.Scalar> = {};
    const gStores = this.generatorStores(phase);
    let st: Prepared | undefined;
    let teacherLogits: tf.Tensor | undefined;
    try {
      if (phase === 'joint') teacherLogits = this.teacherLogits(b);
      if (phase === 'joint' && this.selfTraining) {
        st = this.prepareSelfTraining(b, step);
        logged.conf = tf.scalar(st!.confidence);
        // The running statistics' target pass when no term encodes y (kept updates, applied below).
        if (this.targetStatsPass()) tf.tidy(() => { this.f.apply(b.y, 'train'); });
      }
      // 1. Generators f, h, g_x, g_y.
      const { value, grads } = tf.variableGrads(() => {
        const { total, terms } = this.generatorLoss(b, phase, keep, { st, teacherLogits });
        for (const [k, v] of Object.entries(terms)) logged[k] = tf.keep(v);
        return total;
      }, gStores.flatMap((s) => s.variables()));
      logged.total = value;
      const lrScale = learningRateScale(step, this.config.steps, this.config.lrDecayFrom);
      this.applyGrads(this.optG, gStores, grads, lrScale, this.config.optim.lrScale);
      for (const s of gStores) s.flushUpdates();
      // The teacher follows the updated student, running statistics included. A run started --from a
      // trained one has a trained teacher from step 0: no warm-up, which would let it follow the student.
      if (st) this.selfTraining!.update(this.f.store, this.h.store, this.config.fromRun ? Number.MAX_SAFE_INTEGER : step);

      // 2. Critics D_z, D_x, D_y on this pass's detached features and translations.
      const critics = this.critics();
      if (phase !== 'pretrain' && critics.length > 0) {
        const eps = tf.randomUniform([b.x.shape[0]], 0, 1, 'float32', deriveSeed(this.config.seed, 'gp', step) % 2147483647) as tf.Tensor1D;
        const cv = tf.variableGrads(() => {
          const r = this.criticLoss(b, keep, eps);
          for (const [k, v] of Object.entries(r.parts)) logged[k] = tf.keep(v);
          return r.total;
        }, critics.flatMap((n) => n.store.variables()));
        this.applyGrads(this.optD, critics.map((n) => n.store), cv.grads, lrScale, this.config.criticOptim.lrScale);
        cv.value.dispose();
        eps.dispose();
      }
      // One device read for every logged value (a GPU backend would sync once per term otherwise).
      const names = Object.keys(logged);
      const values = tf.tidy(() => tf.stack(names.map((k) => logged[k])).dataSync());
      const out: Record<string, number> = {};
      names.forEach((k, i) => { out[k] = values[i]; });
      if ('gp_x' in out || 'gp_y' in out) out.gp = (out.gp_x ?? 0) + (out.gp_y ?? 0);
      delete out.gp_x; delete out.gp_y;
      return out as Losses;
    } finally {
      for (const t of Object.values(logged)) t.dispose();
      for (const t of Object.values(keep)) t?.dispose();
      disposePrepared(st);
      teacherLogits?.dispose();
      for (const n of this.networks()) n.store.dropUpdates();
    }
  }

  /** One Adam update of `stores`, each at the schedule's factor times its network's own (config lrScale). */
  private applyGrads(opt: Adam, stores: Store[], grads: tf.NamedTensorMap, lrScale: number, perNet: NetworkRates = {}): void {
    for (const s of stores) {
      const updates: { name: string; variable: tf.Variable; grad: tf.Tensor }[] = [];
      for (const [name, variable] of s.trainable) {
        const g = grads[variable.name];
        if (g) updates.push({ name, variable, grad: g });
      }
      opt.apply(updates, lrScale * networkRate(perNet, s.net));
    }
    for (const g of Object.values(grads)) g.dispose();
  }

  dispose(): void {
    for (const n of this.networks()) n.store.dispose();
    this.optG.dispose();
    this.optD.dispose();
  }
}

type NetworkRates = NonNullable<Config['optim']['lrScale']>;

/** A network's multiplier of its optimiser's rate: ADDA's f_t, a copy of f, follows f's unless named. */
export function networkRate(rates: NetworkRates, net: string): number {
  const own = rates[net as keyof NetworkRates];
  return own ?? (net === 'f_t' ? rates.f : undefined) ?? 1;
}

/** What checkpoints and optimisers need of a network. */
export interface Named { name: string; store: Store }

/** Batch-norm modes of one decode: g_shared, then g_x's and g_y's own layers. */
export interface DecodeModes { trunk: Mode; x: Mode; y: Mode }

export interface Kept { zx?: tf.Tensor4D; zy?: tf.Tensor4D; xToY?: tf.Tensor4D; yToX?: tf.Tensor4D }
