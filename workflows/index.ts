export { delivery } from './delivery.ts';
export { application } from './application.ts';
export { preflight } from './preflight.ts';
