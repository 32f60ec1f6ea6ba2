/**
 * One line of text per event, and the Slack-compatible body (`{text, blocks}`:
 * Slack's incoming webhooks and the chat tools that copy them take it) for
 * sinks with `format: slack`. `text` is the fallback for notifications; the
 * blocks say the same with the details on a second line.
 */
import type { FlotillaEvent } from './events.ts';

const appOf = (e: { app: { namespace: string; name: string } }): string => `${e.app.namespace}/${e.app.name}`;
const failed = (e: { clusters: { cluster: string; phase: string; failureType?: string | undefined }[] }): string => {
  const bad = e.clusters.filter((c) => c.phase !== 'Healthy');
  return bad.length ? ` (${bad.map((c) => `${c.cluster}: ${c.failureType ?? c.phase}`).join(', ')})` : '';
};

/** A plain sentence saying what happened. */
export function summary(e: FlotillaEvent): string {
  switch (e.type) {
    case 'gate.waiting':
      return `Gate ${e.gate} of ${appOf(e)} waits for a decision${e.deadline ? ` until ${e.deadline}${e.defaultAction ? ` (then: ${e.defaultAction})` : ''}` : ''}`;
    case 'gate.reminder':
      return `Reminder: gate ${e.gate} of ${appOf(e)} still waits; deadline ${e.deadline}${e.defaultAction ? ` (then: ${e.defaultAction})` : ''}`;
    case 'gate.decided':
      return `Gate ${e.gate} of ${appOf(e)} ${e.decision}${e.byDeadline ? ' by its deadline' : ` by ${e.by}`}${e.comment ? `: ${e.comment}` : ''}`;
    case 'delivery.finished':
      return `Delivery of ${appOf(e)}${e.image ? ` ${e.image}` : ''} is Healthy`;
    case 'delivery.failed':
      return `Delivery of ${appOf(e)}${e.image ? ` ${e.image}` : ''} ended ${e.phase}${failed(e)}`;
    case 'delivery.needsAttention':
      return `Delivery of ${appOf(e)} needs an SRE${failed(e)}`;
    case 'cluster.failedOver':
      return `Cluster ${e.cluster} failed over to ${e.to.join(', ')}: ${e.reason}`;
    case 'cluster.failedBack':
      return `Cluster ${e.cluster} failed back${e.from.length ? ` from ${e.from.join(', ')}` : ''}${e.reason ? `: ${e.reason}` : ''}`;
  }
}

const icon: Record<FlotillaEvent['type'], string> = {
  'gate.waiting': ':raised_hand:',
  'gate.reminder': ':alarm_clock:',
  'gate.decided': ':ballot_box_with_check:',
  'delivery.finished': ':white_check_mark:',
  'delivery.failed': ':x:',
  'delivery.needsAttention': ':warning:',
  'cluster.failedOver': ':rotating_light:',
  'cluster.failedBack': ':leftwards_arrow_with_hook:',
};

/** Slack's mrkdwn treats &, < and > as markup. */
const escape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export interface SlackBody {
  text: string;
  blocks: ({ type: 'section'; text: { type: 'mrkdwn'; text: string } } | { type: 'context'; elements: { type: 'mrkdwn'; text: string }[] })[];
}

export function slackBody(e: FlotillaEvent): SlackBody {
  const text = summary(e);
  const detail = 'message' in e && e.message ? e.message : undefined;
  const context = ['deliveryId' in e ? `delivery ${e.deliveryId}` : `cluster ${'cluster' in e ? e.cluster : ''}`, e.at, e.link ? `<${e.link}|details>` : undefined].filter(Boolean) as string[];
  return {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `${icon[e.type]} ${escape(text)}${detail ? `\n${escape(detail)}` : ''}` } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: context.map((c) => (c.startsWith('<') ? c : escape(c))).join(' · ') }] },
    ],
  };
}
