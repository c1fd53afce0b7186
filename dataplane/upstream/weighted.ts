// Smooth weighted round robin (nginx's algorithm): each pick raises every candidate's current
// weight by its weight and takes the highest, which then pays back the total. Over any run of
// `sum(weights)` picks each candidate is chosen exactly `weight` times, interleaved rather than
// in bursts, so a 3/1 split over 400 requests is exactly 300/100.

/**
 * The mutable part of a picker: current weights. Kept across reloads (see PickerStates) so a
 * reload that leaves a route's split unchanged does not restart its cycle.
 */
export interface PickerState {
  readonly signature: string;
  readonly current: number[];
}

export class SmoothWeightedPicker<T> {
  /** The candidates with non-zero weight, and their weights. */
  readonly items: readonly T[];
  readonly weights: readonly number[];
  private readonly current: number[];
  private readonly total: number;

  /** `items` and `weights` exclude zero weights (zero is never chosen); `state.current` matches them. */
  constructor(items: readonly T[], weights: readonly number[], state: PickerState) {
    this.items = items;
    this.weights = weights;
    this.current = state.current;
    let total = 0;
    for (const weight of weights) total += weight;
    this.total = total;
  }

  /** Null when every weight is zero. */
  pick(): T | null {
    const current = this.current;
    const weights = this.weights;
    if (weights.length === 1) return this.items[0];
    let best = -1;
    for (let i = 0; i < weights.length; i++) {
      current[i] += weights[i];
      if (best < 0 || current[i] > current[best]) best = i;
    }
    if (best < 0) return null;
    current[best] -= this.total;
    return this.items[best];
  }
}

/**
 * Picker state by route name. Compilation reads the previous generation and writes the next;
 * state survives when the route name and its signature (backends and weights) are unchanged.
 */
export class PickerStates {
  private states = new Map<string, PickerState>();

  /** Starts a compilation; call `commit` on the result once the table is swapped in. */
  begin(): PickerStateGeneration {
    return new PickerStateGeneration(this.states);
  }

  commit(generation: PickerStateGeneration): void {
    this.states = generation.next;
  }
}

export class PickerStateGeneration {
  readonly next = new Map<string, PickerState>();
  private readonly previous: ReadonlyMap<string, PickerState>;

  constructor(previous: ReadonlyMap<string, PickerState>) {
    this.previous = previous;
  }

  stateFor(key: string, signature: string, size: number): PickerState {
    const old = this.next.get(key) ?? this.previous.get(key);
    const state = old !== undefined && old.signature === signature ? old : { signature, current: new Array<number>(size).fill(0) };
    this.next.set(key, state);
    return state;
  }
}

const WEIGHT_ONE: readonly number[] = [1];
const SINGLE_STATE: PickerState = { signature: '', current: [0] };

/** Builds a picker over the items with non-zero weight; null when there are none. */
export function weightedPicker<T>(
  key: string,
  candidates: ReadonlyArray<{ item: T; weight: number; id: string }>,
  states: PickerStateGeneration,
): SmoothWeightedPicker<T> | null {
  const live = candidates.filter((candidate) => candidate.weight > 0 && Number.isFinite(candidate.weight));
  if (live.length === 0) return null;
  // One candidate is always picked and has no cycle to keep: no signature or state to look up
  // (most rules; at 50 000 rules that lookup was a tenth of a compile), and a state shared by all
  // (pick() never touches it for one candidate).
  if (live.length === 1) return new SmoothWeightedPicker([live[0].item], live[0].weight === 1 ? WEIGHT_ONE : [live[0].weight], SINGLE_STATE);
  const signature = live.map((candidate) => `${candidate.id}=${candidate.weight}`).join(',');
  return new SmoothWeightedPicker(
    live.map((candidate) => candidate.item),
    live.map((candidate) => candidate.weight),
    states.stateFor(key, signature, live.length),
  );
}
