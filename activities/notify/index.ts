/** Signed webhook notifications (README.md beside this file). */
export { createNotifyActivities, type NotifyActivities, type NotifyDeps, type NotifyInput, type NotifyResult } from './activities.ts';
export { notifyActivityOptions, NotifyFailure } from './options.ts';
export { loadNotifyConfig, NotifyConfigError, NotifyConfigSchema, parseNotifyConfig, SinkSchema, type NotifyConfig, type Sink } from './config.ts';
export { EventType, FlotillaEventSchema, type FlotillaEvent, type FlotillaEventInput } from './events.ts';
export { computeSignature, DEFAULT_MAX_AGE_SECONDS, EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, signatureHeader, verifySignature, type VerifyResult } from './sign.ts';
export { slackBody, summary } from './slack.ts';
