import nodemailer from 'nodemailer';
import type { Logger } from 'pino';
import type { EnvironmentConfig } from '../config/schema.ts';

/** One message as handed to a transport. */
export interface OutgoingMail {
  /** The Message-ID header, angle brackets included; the same on every attempt. */
  messageId: string;
  from: string;
  /** One plain address. */
  to: string;
  subject: string;
  text: string;
  html: string;
}

/**
 * Where the worker hands messages. `send` resolves once the next hop has accepted the message,
 * and rejects otherwise; an error with `permanent: true` (nodemailer sets it from a 5xx reply)
 * says that retrying cannot help. `signal` aborts a send that would outlive the worker's lease.
 */
export interface MailTransport {
  send(mail: OutgoingMail, options?: { signal?: AbortSignal }): Promise<void>;
  /** Releases connections; pending sends finish first. */
  close(): Promise<void>;
}

/** The log methods the mail code uses; a pino logger fits. */
export type MailLogger = Pick<Logger, 'info' | 'warn' | 'error'>;

/** Tuning of the SMTP transport; the defaults suit a relay on the same network. */
export interface SmtpTransportOptions {
  /** Parallel connections to the relay. */
  maxConnections?: number;
  /** Milliseconds to open the TCP connection. */
  connectionTimeoutMs?: number;
  /** Milliseconds to wait for the 220 greeting. */
  greetingTimeoutMs?: number;
  /** Milliseconds a connection may sit without traffic mid-transaction. */
  socketTimeoutMs?: number;
}

/**
 * Delivers over SMTP with a pool of connections. `url` is `smtp://user:pass@host:587`
 * (STARTTLS when offered; add `?requireTLS=true` to insist) or `smtps://…:465` for implicit TLS.
 */
export function createSmtpTransport(url: string, options: SmtpTransportOptions = {}): MailTransport {
  const mailer = nodemailer.createTransport({
    url,
    pool: true,
    maxConnections: options.maxConnections ?? 3,
    maxMessages: 100,
    // nodemailer's defaults (2 minutes to connect, 10 minutes idle) would hold a lease far too long.
    connectionTimeout: options.connectionTimeoutMs ?? 10_000,
    greetingTimeout: options.greetingTimeoutMs ?? 10_000,
    socketTimeout: options.socketTimeoutMs ?? 30_000,
    dnsTimeout: 10_000,
    // Our bodies are strings; never let message content name a file or URL for nodemailer to read.
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  return {
    async send(mail, sendOptions = {}) {
      await mailer.sendMail({
        messageId: mail.messageId,
        from: mail.from,
        // An address object, not a string: nodemailer never parses it into several recipients.
        to: { name: '', address: mail.to },
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        // RFC 3834 §5: tells auto-responders (out-of-office, vacation) not to answer.
        headers: { 'Auto-Submitted': 'auto-generated' },
        signal: sendOptions.signal,
      });
    },
    async close() {
      mailer.close();
    },
  };
}

const LINK = /https?:\/\/[^\s<>"']+/g;

/**
 * For a stack with no SMTP relay (the quick start): logs one line per message naming the
 * recipient, the subject and the links of the text body, so a developer can follow an
 * enrollment link, and reports the message delivered so the dev mailbox shows it as sent.
 *
 * A production environment's links are bearer secrets that must not reach a log: there the
 * transport logs a warning without them and fails the send, so the message stays undelivered
 * in the outbox rather than being reported sent.
 */
export function createConsoleTransport(
  logger: MailLogger,
  environment: Pick<EnvironmentConfig, 'label' | 'kind'>,
): MailTransport {
  return {
    async send(mail) {
      if (environment.kind !== 'test') {
        logger.warn(
          { messageId: mail.messageId, environment: environment.label },
          'No SMTP relay configured: mail of a production environment cannot be delivered',
        );
        throw new Error('No SMTP relay configured');
      }
      const links = [...mail.text.matchAll(LINK)].map((m) => m[0].replace(/[.,;:!?)\]]+$/, ''));
      logger.info(
        { messageId: mail.messageId, to: mail.to, subject: mail.subject, links },
        `Mail to ${mail.to} (not sent, no SMTP configured): ${mail.subject}${links.length ? ` ${links.join(' ')}` : ''}`,
      );
    },
    async close() {},
  };
}
