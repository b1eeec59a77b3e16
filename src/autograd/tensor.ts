import { buffer } from './buffers.js';

/**
 * A node of the autograd tape: a row-major float32 value with an optional gradient of the same shape.
 * Parameters and activations are both `Tensor`s; only those with `requiresGrad` receive gradients.
 */
export class Tensor {
  grad: Float32Array | null = null;
  /** an op's output: its data and gradient come from the step's buffer pool */
  private pooled = false;

  constructor(
    public data: Float32Array,
    public readonly shape: readonly number[],
    public readonly requiresGrad: boolean,
    public readonly name = '',
  ) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`internal error: tensor ${name} has ${data.length} values for shape [${shape.join(', ')}]`);
  }

  get size(): number {
    return this.data.length;
  }

  /** An op's output of `shape`, zeroed, on pooled memory (see buffers.ts). */
  static output(shape: readonly number[], requiresGrad: boolean): Tensor {
    const t = new Tensor(buffer(shape.reduce((a, b) => a * b, 1)), shape, requiresGrad);
    t.pooled = true;
    return t;
  }

  /** The gradient buffer, allocated (zeroed) on first use; pooled for op outputs, owned for parameters and inputs. */
  gradBuf(): Float32Array {
    if (this.grad === null) this.grad = this.pooled ? buffer(this.data.length) : new Float32Array(this.data.length);
    return this.grad;
  }

  zeroGrad(): void {
    if (this.grad !== null) this.grad.fill(0);
  }
}

/** A trainable tensor. */
export function param(data: Float32Array, shape: readonly number[], name: string): Tensor {
  return new Tensor(data, shape, true, name);
}

/** A constant (frozen) tensor: used in forward passes, never receives a gradient. */
export function constant(data: Float32Array, shape: readonly number[], name = ''): Tensor {
  return new Tensor(data, shape, false, name);
}
