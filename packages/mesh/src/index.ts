export * from './bus';
export * from './client';
export * from './errors';
export * from './log';
export * from './nats-bus';
export * from './nats-server';
export * from './server';
export * from './telemetry';
