import type { Repositories } from '../db/store.ts';
import { type RandomBytes, systemRandom } from '../lib/tokens.ts';
import type { RenderedEmail, TemplateName } from './templates.ts';

/** What to put in the outbox: one rendered message to one recipient. */
export interface QueueEmailInput {
  to: string;
  template: TemplateName;
  /** The account the message is about, for the dev mailbox and support; null for none. */
  userId: string | null;
  rendered: RenderedEmail;
  /** Epoch milliseconds; the message is due at once. */
  now: number;
  /** Normally generated; given only to make a test deterministic. */
  messageId?: string;
}

/** The queued message: the outbox row id and the Message-ID header it will be sent with. */
export interface QueuedEmail {
  id: number;
  messageId: string;
}

/**
 * A globally unique Message-ID (RFC 5322 §3.6.4): 128 random bits, so a re-send of the same row
 * after a crash carries the same header and receivers can drop the duplicate.
 */
export function createMessageId(random: RandomBytes = systemRandom): string {
  return `<${random(16).toString('hex')}@traqs-mfa>`;
}

// One plain addr-spec: no display name, comment, group or list. A value such as
// "a@x.example, b@y.example" must never turn into a second recipient.
const ADDRESS = /^[^\s@,;:<>()[\]\\"]+@[^\s@,;:<>()[\]\\"]+$/;

/**
 * Writes a message to the outbox. Call it inside `store.transaction` with the state change the
 * message reports, so the mail exists if and only if the change committed (transactional outbox).
 */
export async function queueEmail(repos: Pick<Repositories, 'outbox'>, input: QueueEmailInput): Promise<QueuedEmail> {
  const to = input.to.trim().toLowerCase();
  // RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle brackets.
  if (to.length > 254 || !ADDRESS.test(to)) throw new Error('Invalid recipient address');
  const messageId = input.messageId ?? createMessageId();
  const id = await repos.outbox.enqueueMessage({
    message_id: messageId,
    to_address: to,
    subject: input.rendered.subject,
    text_body: input.rendered.text,
    html_body: input.rendered.html,
    template: input.template,
    user_id: input.userId,
    next_attempt_at: input.now,
    created_at: input.now,
  });
  return { id, messageId };
}
