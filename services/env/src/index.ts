export * from './actor';
export * from './grpc';
export * from './policy-client';
export * from './replica';
export * from './sequence-generate';
export * from './service';
