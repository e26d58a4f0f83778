// The teacher of representation alignment (REPA, Yu et al. 2024): a small convolutional classifier built and
// trained with the engine on a dataset's train split — deliberately not the judge's architecture (stride-2
// convolutions, GroupNorm + GELU, no pooling; the judge pools between stages of SiLU convolutions). What the
// DiT learns from is its feature map at the latents' resolution, one vector per latent pixel (per token at
// patch 1), normalised over each image's tokens (iREPA, 2025: the spatial structure of the features, not
// their global part, is what helps); `teacherFeatures` writes them beside the latents in the latent cache.
import { Tensor, scope, noGrad } from '../engine/tensor.js';
import type { Safetensors } from '../engine/safetensors.js';
import { f32ToF16 } from '../engine/half.js';
import { Module, ModuleList } from '../nn/module.js';
import { Linear, Conv2d, GroupNorm } from '../nn/layers.js';
import { gelu } from '../kernels/elementwise.js';
import { mean } from '../kernels/reduce.js';
import { Generator } from '../kernels/random.js';
import { imageBatch, type ImageDataset } from '../data/dataset.js';
import { saveNetwork, loadNetwork } from './classifier.js';

export interface TeacherConfig {
  channels: number;
  classes: number;
  /** Widths of the convolutions; a stride-2 convolution halves the resolution where `strides` says 2. */
  widths: number[];
  strides: number[];
}

/** 32×32 images → an 8×8×64 feature map (two stride-2 convolutions), 0.13 M parameters. */
export const TEACHER_32: Omit<TeacherConfig, 'channels' | 'classes'> = { widths: [32, 64, 64, 64, 64], strides: [1, 2, 1, 2, 1] };

/** How a teacher is trained unless told otherwise (`dit teacher train`, the demo): AdamW with warm-up and cosine decay. */
export const TEACHER_TRAINING = { epochs: 4, batch: 64, lr: 2e-3 };

export class Teacher extends Module {
  readonly convs: ModuleList<Conv2d>;
  readonly norms: ModuleList<GroupNorm>;
  readonly head: Linear;

  constructor(readonly config: TeacherConfig, seed = 0) {
    super();
    const gen = new Generator(seed);
    const w = config.widths;
    this.convs = this.module('convs', new ModuleList(w.map((width, i) => new Conv2d(i === 0 ? config.channels : w[i - 1], width, 3, gen))));
    this.norms = this.module('norms', new ModuleList(w.map((width) => new GroupNorm(8, width))));
    this.head = this.module('head', new Linear(w[w.length - 1], config.classes, gen));
    this.nameParameters();
  }

  /** The width of a feature vector (the last convolution's). */
  get featureDim(): number { return this.config.widths[this.config.widths.length - 1]; }

  /** Images [B, C, H, W] in [−1, 1] → the feature map [B, F, H/4, W/4]. */
  featureMap(x: Tensor): Tensor {
    let h = x;
    this.convs.items.forEach((c, i) => { h = gelu(this.norms.items[i].forward(c.forward(h, this.config.strides[i], 1))); });
    return h;
  }

  /** Logits of the classes, from the mean of the feature map. */
  forward(x: Tensor): Tensor { return this.head.forward(mean(this.featureMap(x), [2, 3])); }
}

/**
 * The aligned features of images `idx` of `d`: the feature map as one F-vector per pixel [n, h·w, F], each
 * channel normalised over an image's pixels (zero mean, unit deviation), in float16 (what the cache stores).
 */
export async function teacherFeatures(teacher: Teacher, d: ImageDataset, idx: number[], batch = 100, onProgress?: (done: number) => void): Promise<{ data: Uint16Array; shape: [number, number, number] }> {
  teacher.eval();
  let out: Uint16Array | null = null, T = 0, F = 0;
  for (let s = 0; s < idx.length; s += batch) {
    const part = idx.slice(s, s + batch);
    const fm = scope(() => noGrad(() => teacher.featureMap(imageBatch(d, part)))).keep();
    const [B, C, h, w] = fm.shape;
    const v = (await fm.data()) as Float32Array;
    fm.dispose();
    T = h * w; F = C;
    out ??= new Uint16Array(idx.length * T * F);
    const row = new Float32Array(T * F);
    for (let b = 0; b < B; b++) {
      for (let c = 0; c < C; c++) {
        let m = 0, q = 0;
        for (let t = 0; t < T; t++) m += v[(b * C + c) * T + t];
        m /= T;
        for (let t = 0; t < T; t++) q += (v[(b * C + c) * T + t] - m) ** 2;
        const sd = Math.sqrt(q / (T - 1)) + 1e-6;
        for (let t = 0; t < T; t++) row[t * F + c] = (v[(b * C + c) * T + t] - m) / sd;
      }
      out.set(f32ToF16(row), (s + b) * T * F);
    }
    onProgress?.(Math.min(s + batch, idx.length));
  }
  return { data: out ?? new Uint16Array(0), shape: [idx.length, T, F] };
}

/** Writes the teacher's weights with its config and `meta` (what it was trained on, its accuracy, the command); refuses non-finite weights. */
export const saveTeacher = (teacher: Teacher, file: string, meta: Record<string, string>) => saveNetwork(teacher, file, 'dit-webgpu-teacher', 'the alignment teacher', meta);

/** A teacher from `saveTeacher`'s file. */
export function teacherFromSafetensors(st: Safetensors): { teacher: Teacher; metadata: Record<string, string> } {
  return { teacher: loadNetwork(st, 'dit-webgpu-teacher', 'an alignment teacher', (c: TeacherConfig) => new Teacher(c, 0)), metadata: st.metadata };
}
