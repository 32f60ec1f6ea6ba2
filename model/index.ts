export * from './names.ts';
export * from './image.ts';
export * from './inventory.ts';
export * from './app.ts';
export * from './delivery.ts';
export * from './reasons.ts';
export * from './plan.ts';
export * from './render.ts';
