export { deploy } from './deploy.ts';
export { application } from './application.ts';
