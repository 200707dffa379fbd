/**
 * @rlmesh/policy: batched ONNX inference of each run's current policy version, hot-swapped from the
 * bus, served as rlmesh.v1.PolicyService or used in-process through PolicyCore.
 */
export * from './batcher';
export * from './core';
export * from './generation';
export * from './grpc';
export * from './openai';
export { type InferenceOutput, InferenceWorker, WORKER_PATH } from './worker';
