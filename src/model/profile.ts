import type { Kernels } from '../kernels/types.js';

/** The parts of a forward pass a profile times. */
export type ForwardSection = 'linear' | 'attention' | 'norm' | 'rope' | 'cache' | 'activation' | 'embed';

/** Where a forward pass spends its time, when a profile is attached (bench only). */
export class ForwardProfile {
  readonly ms: Record<ForwardSection, number> = { linear: 0, attention: 0, norm: 0, rope: 0, cache: 0, activation: 0, embed: 0 };
  /** rows processed (prompt and decode rows alike) */
  rows = 0;

  get linearMs(): number {
    return this.ms.linear;
  }

  get attentionMs(): number {
    return this.ms.attention;
  }

  /** everything but the linear layers and attention */
  get otherMs(): number {
    return this.ms.norm + this.ms.rope + this.ms.cache + this.ms.activation + this.ms.embed;
  }

  reset(): void {
    for (const key of Object.keys(this.ms) as ForwardSection[]) this.ms[key] = 0;
    this.rows = 0;
  }
}

/** The section each kernel a forward pass calls is counted in. */
const SECTION_OF: Partial<Record<keyof Kernels, ForwardSection>> = {
  sgemm: 'linear',
  sgemmPacked: 'linear',
  sgemmPackedParts: 'linear',
  sgemv: 'linear',
  sgemvParts: 'linear',
  sgemvBatch: 'linear',
  halfToFloat: 'linear',
  bf16ToFloat: 'linear',
  quantGemm: 'linear',
  bf16Gemm: 'linear',
  dequantRows: 'linear',
  rmsnorm: 'norm',
  rope: 'rope',
  copyRows: 'cache',
  attendHead: 'attention',
  siluMul: 'activation',
};

/** The kernels, each call timed into `profile` under its section: profiling as a wrapper, not in the forward pass. */
export function profiledKernels(k: Kernels, profile: ForwardProfile): Kernels {
  const out: Record<string, unknown> = Object.create(k);
  for (const [name, section] of Object.entries(SECTION_OF) as [keyof Kernels, ForwardSection][]) {
    const f = k[name] as unknown as (...a: unknown[]) => unknown;
    out[name] = (...args: unknown[]) => {
      const t = performance.now();
      const r = f.apply(k, args);
      profile.ms[section] += performance.now() - t;
      return r;
    };
  }
  return out as unknown as Kernels;
}
