// The seeded RNG lives in @rlmesh/core so that environments and learners share one generator.
export { Rng, type RngState } from '@rlmesh/core';
