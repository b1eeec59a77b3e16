import { Tensor } from './tensor.js';

/**
 * Reverse-mode autodiff: each op runs its forward eagerly and records one closure that applies its
 * backward rule to whole arrays. `backward()` runs them in reverse order.
 */
export class Tape {
  private readonly steps: (() => void)[] = [];

  record(backward: () => void): void {
    this.steps.push(backward);
  }

  get length(): number {
    return this.steps.length;
  }

  /** Seed d(loss)/d(loss) = 1 and run every recorded backward rule, newest first. */
  backward(loss: Tensor): void {
    if (loss.size !== 1) throw new Error('internal error: backward() needs a scalar loss');
    loss.gradBuf()[0] = 1;
    for (let i = this.steps.length - 1; i >= 0; i--) this.steps[i]();
    this.steps.length = 0;
  }

  /** Seed the gradient of any output with `seed` (same size) and run the backward rules. */
  backwardFrom(output: Tensor, seed: Float32Array): void {
    output.gradBuf().set(seed);
    for (let i = this.steps.length - 1; i >= 0; i--) this.steps[i]();
    this.steps.length = 0;
  }

  /** Drop the recorded steps without running them (evaluation passes). */
  clear(): void {
    this.steps.length = 0;
  }
}

/** True when some input needs a gradient, i.e. the op must record a backward step. */
export function anyGrad(...xs: Tensor[]): boolean {
  for (const x of xs) if (x.requiresGrad) return true;
  return false;
}
