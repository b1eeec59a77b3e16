import type { Weights } from '../model/types.js';
import type { PressModel } from './types.js';

/** The weights of a press model that shows them (LlamaModel does): trained queries are checked against its hash. */
export function modelWeights(model: PressModel, method: string): Weights {
  if (model.weights === undefined) throw new Error(`internal error: ${method} needs a model that exposes its weights (LlamaModel)`);
  return model.weights;
}
