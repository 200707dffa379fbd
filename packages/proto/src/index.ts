/**
 * The rlmesh v1 contracts: generated ts-proto messages and grpc-js service definitions
 * (src/gen, from proto/rlmesh/v1 by `npm run proto`), the tensor codec, and the descriptor set that
 * servers load for reflection.
 */
import { join } from 'node:path';

export * from './gen/rlmesh/v1/common';
// Every generated file defines these helpers; name one copy so that the star exports do not clash.
export { type DeepPartial, type MessageFns, protobufFileName, protobufPackage } from './gen/rlmesh/v1/common';
export * from './gen/rlmesh/v1/env';
export * from './gen/rlmesh/v1/evaluator';
export * from './gen/rlmesh/v1/learner';
export * from './gen/rlmesh/v1/policy';
export * from './gen/rlmesh/v1/sae';
export * from './tensor';

/** `buf build` output for every rlmesh proto file: what reflection serves. */
export const DESCRIPTOR_SET_PATH = join(__dirname, '..', 'rlmesh.binpb');
