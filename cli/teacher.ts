// `dit teacher train`: the alignment teacher of the recipes that use representation alignment — a small
// classifier trained with the engine on a dataset's train split (eval/teacher.ts); `dit vae encode --teacher`
// then stores its features of every cached image beside the latents.
import { Command } from 'commander';
import { getDevice, describeAdapter } from '../engine/device.js';
import { NonFiniteError } from '../engine/errors.js';
import { loadDataset, type DataSpec } from '../data/readers.js';
import { subset, fingerprint } from '../data/dataset.js';
import { Teacher, TEACHER_32, TEACHER_TRAINING, saveTeacher } from '../eval/teacher.js';
import { trainClassifier, accuracy } from '../eval/classifier.js';
import { noGrad, scope } from '../engine/tensor.js';
import { imageBatch } from '../data/dataset.js';
import { int, num, dataOption, dataDir, examples, log, checkOutputs, LIMITS } from './options.js';
import { Progress } from './progress.js';

interface TeacherOpts { data: DataSpec; epochs: number; batch: number; lr: number; count?: number; seed: number; out: string }

/** The command line that trains this teacher again (recorded in its metadata): the data and every setting that differs from its default. */
function teacherCommand(o: TeacherOpts): string {
  const flags = [`--data ${o.data.kind}`, o.count ? `--count ${o.count}` : '', `--epochs ${o.epochs}`, o.batch !== TEACHER_TRAINING.batch ? `--batch ${o.batch}` : '', o.lr !== TEACHER_TRAINING.lr ? `--lr ${o.lr}` : '', o.seed ? `--seed ${o.seed}` : ''];
  return `dit teacher train ${flags.filter(Boolean).join(' ')} --out ${o.out}`;
}

export function registerTeacher(program: Command): void {
  const teacher = program.command('teacher').description('the alignment teacher of representation alignment (REPA): train it; dit vae encode --teacher stores its features in a latent cache');
  const cmd = teacher.command('train').description('train the teacher (a small stride-2 conv classifier, not the judge\'s architecture) on a dataset\'s train split')
    .addOption(dataOption())
    .addOption(int('--epochs <n>', 'passes over the train split', { min: 1, max: 1000, def: TEACHER_TRAINING.epochs }))
    .addOption(int('--batch <n>', 'batch size', { min: 1, max: LIMITS.batch, def: TEACHER_TRAINING.batch }))
    .addOption(num('--lr <x>', 'peak learning rate (AdamW, warm-up then cosine)', { above: 0, max: 1, def: TEACHER_TRAINING.lr }))
    .addOption(int('--count <n>', 'train on the first n images only', { min: 1, max: LIMITS.images }))
    .addOption(int('--seed <n>', 'seed', { min: 0, max: LIMITS.seed, def: 0 }))
    .option('--out <file>', 'the teacher', 'out/teacher.safetensors')
    .action(async (o: TeacherOpts) => { process.exitCode = await runTeacherTrain(o); });
  examples(cmd, ['dit teacher train --data synthetic --epochs 4 --out out/teacher.safetensors']);
}

async function runTeacherTrain(o: TeacherOpts): Promise<number> {
  checkOutputs({ inputs: [dataDir(o.data)], outputs: [o.out] });
  const full = await loadDataset(o.data, 'train', { onProgress: (m) => log(`  ${m}`) }), test = await loadDataset(o.data, 'test');
  const train = o.count ? subset(full, o.count) : full;
  const g = await getDevice();
  log(`adapter: ${describeAdapter(g.adapter)}`);
  const t = new Teacher({ ...TEACHER_32, channels: train.channels, classes: train.classes.length }, o.seed);
  log(`teacher: widths ${t.config.widths.join(', ')}, strides ${t.config.strides.join(', ')}, ${t.numParameters().toLocaleString('en-US')} parameters; ${train.count} images, ${o.epochs} epochs`);
  let p: Progress | null = null;
  let r: Awaited<ReturnType<typeof trainClassifier>>;
  try {
    r = await trainClassifier(t, train, { epochs: o.epochs, batch: o.batch, lr: o.lr, seed: o.seed, onLog: (m) => (p ??= new Progress('training the teacher', m.steps)).update(m.step, `loss ${m.loss.toFixed(3)}`) });
  } catch (e) {
    if (!(e instanceof NonFiniteError)) throw e;
    log(`dit teacher train: ${e.message}; stopped, ${o.out} not written. Try a lower --lr.`);
    return 3;
  }
  const n = Math.min(2000, test.count), preds = new Int32Array(n);
  for (let s = 0; s < n; s += 200) {
    const idx = Array.from({ length: Math.min(200, n - s) }, (_, k) => s + k);
    const logits = scope(() => noGrad(() => t.forward(imageBatch(test, idx)))).keep();
    const v = (await logits.data()) as Float32Array, K = train.classes.length;
    logits.dispose();
    idx.forEach((_, b) => { let best = 0; for (let k = 1; k < K; k++) if (v[b * K + k] > v[b * K + best]) best = k; preds[s + b] = best; });
  }
  const acc = accuracy(preds, test.labels.subarray(0, n), train.classes.length).overall;
  await saveTeacher(t, o.out, { data: o.data.kind, fingerprint: fingerprint(train), images: String(train.count), epochs: String(o.epochs), test_accuracy: acc.toFixed(4), train_seconds: r.seconds.toFixed(0), command: teacherCommand(o) });
  process.stdout.write(`trained the teacher for ${r.steps} steps in ${r.seconds.toFixed(0)} s; ${(100 * acc).toFixed(1)}% on ${n} test images; wrote ${o.out}\n`);
  return 0;
}
