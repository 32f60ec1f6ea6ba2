/**
 * The stack's behaviour table: which pods misbehave, chosen by image or label, set at
 * run time (`npm run stack -- behave ...`, setBehaviour) without touching any pod
 * template. The puller reads it (`<data>/behaviours.json`) and, when it marks a pod
 * pulled, writes the pod's behaviour in the annotation kwok's stages select on
 * (stack/kwok/stages.yaml). Shared by the puller and the stack's API.
 */
import { z } from 'zod';

export const BEHAVIOURS = ['ready', 'unready', 'crashloop', 'unready-after'] as const;
export type Behaviour = (typeof BEHAVIOURS)[number];

/** The annotations the puller writes on a pod (kwok's stages read the first two). */
export const BEHAVIOUR_ANNOTATION = 'stack.flotilla.dev/behaviour';
export const UNREADY_AFTER_ANNOTATION = 'stack.flotilla.dev/unready-after';
/** Which rule of the table chose the behaviour (absent: the pod's own annotation, or none). */
export const RULE_ANNOTATION = 'stack.flotilla.dev/behaviour-rule';
/** A pod template's own say, as before the table existed: `flotilla.dev/simulate: unready`. */
export const SIMULATE_ANNOTATION = 'flotilla.dev/simulate';
export const SIMULATE_AFTER_ANNOTATION = 'flotilla.dev/unready-after';

const LABEL =
  /^([a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?\/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]{0,61}[a-zA-Z0-9])?=[-a-zA-Z0-9_.]{0,63}$/;

export const BehaviourRuleSchema = z
  .object({
    /** As given: `127.0.0.1:27010/demo/web:v2`, `demo/web:v2`, `demo/web@sha256:...`. */
    image: z.string().min(1).optional(),
    /** `key=value` on the pod's labels. */
    label: z.string().regex(LABEL, 'key=value (a Kubernetes label)').optional(),
    behaviour: z.enum(BEHAVIOURS),
    /** For unready-after: seconds from Ready to not Ready. */
    afterSeconds: z.number().int().min(1).max(86_400).optional(),
    /** For image rules, what they match: the repository (without its registry host) and the digest. */
    repository: z.string().min(1).optional(),
    digest: z
      .string()
      .regex(/^sha256:[0-9a-f]{64}$/)
      .optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (Boolean(r.image) === Boolean(r.label))
      ctx.addIssue({ code: 'custom', path: ['image'], message: 'give exactly one of image and label' });
    if (r.image && !(r.repository && r.digest))
      ctx.addIssue({
        code: 'custom',
        path: ['digest'],
        message: 'an image rule needs its resolved repository and digest',
      });
    if ((r.behaviour === 'unready-after') !== (r.afterSeconds !== undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['afterSeconds'],
        message: 'afterSeconds goes with unready-after, and only with it',
      });
  });
export type BehaviourRule = z.infer<typeof BehaviourRuleSchema>;
export const BehaviourTableSchema = z.array(BehaviourRuleSchema);

/** A rule's matcher, its key in the table: setting the same matcher again replaces the rule. */
export const ruleKey = (r: Pick<BehaviourRule, 'image' | 'label'>) =>
  r.image ? `image ${r.image}` : `label ${r.label}`;

/**
 * Parses `unready`, `crashloop`, `ready`, `unready-after=30s` (s, m or h; plain seconds too).
 * Throws with the accepted forms.
 */
export function parseBehaviour(spec: string): { behaviour: Behaviour; afterSeconds?: number } {
  const m = /^unready-after=(\d+)(s|m|h)?$/.exec(spec.trim());
  if (m) {
    const seconds = Number(m[1]) * ({ s: 1, m: 60, h: 3600 } as const)[(m[2] ?? 's') as 's' | 'm' | 'h'];
    if (seconds < 1) throw new Error(`unready-after needs at least 1s, got "${spec}"`);
    return { behaviour: 'unready-after', afterSeconds: seconds };
  }
  if (spec === 'ready' || spec === 'unready' || spec === 'crashloop') return { behaviour: spec };
  throw new Error(`unknown behaviour "${spec}": one of ready, unready, crashloop, unready-after=<N>s`);
}

export const describeBehaviour = (b: { behaviour: Behaviour; afterSeconds?: number | undefined }) =>
  b.behaviour === 'unready-after' ? `unready-after=${b.afterSeconds}s` : b.behaviour;

export interface PodFacts {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Every container's image (init, sidecar and app) as resolved: repository without host, and digest. */
  images: { repository: string; digest: string }[];
}

export interface Decision {
  behaviour: Behaviour;
  afterSeconds?: number;
  /** The table's rule that decided, if one did. */
  rule?: string;
}

/**
 * What a pod does: the last rule of the table that matches it (by label, or by an image
 * of the same repository and digest, whichever registry it came from), else its own
 * `flotilla.dev/simulate` annotation, else `ready`.
 */
export function decide(table: BehaviourRule[], pod: PodFacts): Decision {
  for (let i = table.length - 1; i >= 0; i--) {
    const r = table[i]!;
    const hit = r.label
      ? pod.labels[r.label.slice(0, r.label.indexOf('='))] === r.label.slice(r.label.indexOf('=') + 1)
      : pod.images.some((img) => img.repository === r.repository && img.digest === r.digest);
    if (hit)
      return {
        behaviour: r.behaviour,
        ...(r.afterSeconds !== undefined ? { afterSeconds: r.afterSeconds } : {}),
        rule: ruleKey(r),
      };
  }
  const own = pod.annotations[SIMULATE_ANNOTATION];
  if (own === 'unready' || own === 'crashloop') return { behaviour: own };
  if (own === 'unready-after') {
    const after = pod.annotations[SIMULATE_AFTER_ANNOTATION];
    try {
      if (after) return parseBehaviour(`unready-after=${after}`);
    } catch {
      /* a bad duration: as if unset */
    }
    return { behaviour: 'unready-after', afterSeconds: 30 };
  }
  return { behaviour: 'ready' };
}
