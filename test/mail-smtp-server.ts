import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** A reply the test server gives to a message's DATA instead of accepting it. */
export interface SmtpRejection {
  responseCode: number;
  message: string;
}

/** A real SMTP server on 127.0.0.1 that keeps what it accepts. */
export interface TestSmtpServer {
  /** `smtp://127.0.0.1:<port>` */
  readonly url: string;
  /** Messages accepted, parsed, in arrival order. */
  readonly received: ParsedMail[];
  /** DATA transactions seen, accepted or not. */
  readonly attempts: () => number;
  close(): Promise<void>;
}

/**
 * Decides the reply to one message, given its 1-based number among all DATA transactions:
 * undefined accepts it, a rejection refuses it; a promise holds the reply back until it settles.
 */
export type SmtpDecision = (attempt: number) => SmtpRejection | undefined | Promise<SmtpRejection | undefined>;

/** Starts the server on an ephemeral port. */
export async function startTestSmtpServer(decide: SmtpDecision = () => undefined): Promise<TestSmtpServer> {
  const received: ParsedMail[] = [];
  let attempts = 0;
  const server = new SMTPServer({
    // Plain SMTP on loopback: no certificate to trust, no credentials to send.
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      // smtp-server wants the stream read to its end before the reply.
      stream.on('end', () => {
        attempts += 1;
        Promise.resolve(decide(attempts))
          .then(async (rejection) => {
            if (rejection) {
              callback(Object.assign(new Error(rejection.message), { responseCode: rejection.responseCode }));
              return;
            }
            received.push(await simpleParser(Buffer.concat(chunks)));
            callback();
          })
          .catch((err: Error) => callback(err));
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    attempts: () => attempts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
