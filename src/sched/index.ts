export * from './step.js';
export * from './thread.js';
export * from './sync.js';
export * from './runner.js';
export * from './explore.js';
