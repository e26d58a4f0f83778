// Reverse-mode autodiff over the graph that `record()` builds: topological order from the loss, one
// gradient per node, summed where a tensor is used twice, accumulated into leaves' `.grad`. Every
// intermediate gradient is freed as soon as it has been consumed, and the saved tensors after the pass.
// The tape runs no kernel of its own: summing gradients is an op of the kernel layer above, which hands
// it down with `setGradientSum` when it loads (every op that records a node comes from that layer).
import { Tensor, Node, noGrad, scope, check, fmtShape, keep } from './tensor.js';

/** How gradients are summed: out of place (two contributions to one node) and in place (into a leaf's `.grad`). */
export interface GradientSum { add(a: Tensor, b: Tensor): Tensor; addInPlace(dst: Tensor, src: Tensor): void }
let sum: GradientSum | null = null;

/** Installs the kernels that sum gradients (kernels/elementwise.ts does, at load). @internal */
export function setGradientSum(ops: GradientSum): void { sum = ops; }

function topoOrder(root: Node): Node[] {
  const order: Node[] = [];
  const seen = new Set<Node>();
  const stack: [Node, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [node, i] = top;
    if (i < node.parents.length) {
      top[1]++;
      const p = node.parents[i];
      if (p && !seen.has(p)) { seen.add(p); stack.push([p, 0]); }
    } else {
      stack.pop();
      order.push(node);
    }
  }
  return order; // parents before children
}

/**
 * Backpropagates from `loss` (a one-element tensor, or any tensor with an explicit `grad` of its shape).
 * Gradients accumulate into the `.grad` of leaf tensors with `requiresGrad`. The graph is freed afterwards.
 */
export function backward(loss: Tensor, grad?: Tensor): void {
  check(loss.requiresGrad && loss.node, 'backward', `tensor ${fmtShape(loss.shape)} does not require grad (no parameter or input with requiresGrad reached it)`);
  check(grad || loss.size === 1, 'backward', `needs a one-element loss or an explicit gradient; got shape ${fmtShape(loss.shape)}`);
  if (grad) check(grad.size === loss.size, 'backward', `gradient ${fmtShape(grad.shape)} does not match ${fmtShape(loss.shape)}`);
  const root = loss.node!;
  check(!root.released, 'backward', 'this graph was already backpropagated (its saved tensors are freed); run the forward pass again');
  check(sum, 'backward', 'no gradient kernels are loaded (import the ops from the kernels layer)');
  const ops = sum;
  const order = topoOrder(root);
  const grads = new Map<Node, Tensor>();
  noGrad(() => {
    grads.set(root, keep(grad ? grad.view(loss.shape) : Tensor.from(new Float32Array(loss.size).fill(1), loss.shape)));
    for (let i = order.length - 1; i >= 0; i--) {
      const node = order[i];
      const g = grads.get(node);
      if (!g) continue;
      grads.delete(node);
      if (node.leaf) {
        accumulate(node.leaf, g, ops);
        continue;
      }
      check(!node.released, 'backward', `the saved tensors of '${node.op}' were already freed`);
      const needs = node.parents.map((p) => p !== null);
      const ins = scope(() => node.backward!(g, node.saved, needs));
      // A backward may pass `g` through or return one tensor twice: give every gradient its own handle.
      const owned = new Set<Tensor>();
      node.parents.forEach((p, k) => {
        let gi = ins[k];
        if (!gi) return;
        if (!p) return;
        if (gi === g || owned.has(gi)) gi = gi.view(gi.shape);
        owned.add(gi);
        gi.keep();
        const prev = grads.get(p);
        // Out of place: a gradient may share storage with another one.
        if (prev) {
          grads.set(p, ops.add(prev, gi).keep());
          prev.dispose();
          gi.dispose();
        } else grads.set(p, gi);
      });
      for (const t of ins) if (t && t !== g && !owned.has(t)) t.dispose();
      g.dispose();
    }
  });
  for (const node of order) if (!node.leaf) node.releaseSaved();
}

function accumulate(leaf: Tensor, g: Tensor, ops: GradientSum): void {
  const shaped = g.shape.length === leaf.shape.length && g.shape.every((d, i) => d === leaf.shape[i]) ? g : reshapeOwned(g, leaf.shape);
  if (!leaf.grad || leaf.grad.disposed) {
    leaf.grad = shaped.keep();
    leaf.grad.name = leaf.name ? `${leaf.name}.grad` : '';
  } else {
    ops.addInPlace(leaf.grad, shaped);
    shaped.dispose();
  }
}

function reshapeOwned(g: Tensor, shape: readonly number[]): Tensor {
  check(g.size === shape.reduce((a, b) => a * b, 1), 'backward', `gradient ${fmtShape(g.shape)} does not fit leaf ${fmtShape(shape)}`);
  const v = g.view(shape);
  g.dispose();
  return v;
}
