// The benchmark cases (shared by our runner, which checks and times them through kernels/registry.ts, and the
// TF.js peer, which receives them as JSON).
export type BenchCase =
  | { id: string; kind: 'matmul'; M: number; N: number; K: number; transB: boolean; flops: number }
  | { id: string; kind: 'attention'; B: number; H: number; T: number; dh: number; flops: number }
  | { id: string; kind: 'layernorm'; B: number; T: number; D: number; bytes: number }
  | { id: string; kind: 'gelu' | 'add' | 'neg'; n: number; bytes: number }
  | { id: string; kind: 'conv'; B: number; C: number; H: number; W: number; Co: number; K: number; flops: number };

const mm = (id: string, M: number, N: number, K: number, transB = false): BenchCase => ({ id, kind: 'matmul', M, N, K, transB, flops: 2 * M * N * K });

export function benchCases(quick: boolean): BenchCase[] {
  const sq = quick ? [256, 512, 1024] : [256, 512, 1024, 2048];
  // DiT linears at batch 8 × 256 tokens (one GEMM of 2048 rows, weights [out, in] as PyTorch: transB).
  const dit = (name: string, D: number) => [
    mm(`${name} qkv`, 2048, 3 * D, D, true), mm(`${name} proj`, 2048, D, D, true), mm(`${name} fc1`, 2048, 4 * D, D, true),
    mm(`${name} fc2`, 2048, D, 4 * D, true), mm(`${name} adaLN`, 8, 6 * D, D, true),
  ];
  const attn = (id: string, B: number, H: number, T: number, dh: number): BenchCase => ({ id, kind: 'attention', B, H, T, dh, flops: 4 * B * H * T * T * dh });
  const ew = 8 * 256 * 384;
  return [
    ...sq.map((n) => mm(`square ${n}`, n, n, n)),
    ...dit('DiT-S/2', 384),
    ...(quick ? [] : dit('DiT-XL/2', 1152)),
    attn('attention DiT-S/2 B8·H6·T256·d64', 8, 6, 256, 64),
    attn('attention DiT-XL/2 B2·H16·T256·d72', 2, 16, 256, 72),
    { id: 'layernorm+modulate [8,256,384]', kind: 'layernorm', B: 8, T: 256, D: 384, bytes: 2 * 4 * ew },
    { id: 'gelu [8,256,1536]', kind: 'gelu', n: 4 * ew, bytes: 2 * 4 * 4 * ew },
    { id: 'add [8,256,384]', kind: 'add', n: ew, bytes: 3 * 4 * ew },
    // One read and one write per element: the bandwidth the other elementwise rows are compared with.
    { id: 'neg [8,256,384]', kind: 'neg', n: ew, bytes: 2 * 4 * ew },
    { id: 'conv 3×3 64→64 at 32×32, B8', kind: 'conv', B: 8, C: 64, H: 32, W: 32, Co: 64, K: 3, flops: 2 * 8 * 64 * 64 * 9 * 32 * 32 },
  ];
}
