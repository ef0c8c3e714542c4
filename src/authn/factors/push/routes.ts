import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError } from '../../../web/errors.ts';
import { parseBody, requestContext, requireJson } from '../../../web/validate.ts';
import type { PushFactor } from './push.ts';
import type { PushDeviceRow } from './repository.ts';
import { pushTopics } from './signals.ts';

// Not strict: the answer route's parameters carry the push id as well.
const deviceParams = z.object({ deviceId: z.string().regex(/^pfd[A-Za-z0-9]{17}$/, 'not a device id') });
const answerParams = z
  .object({
    deviceId: deviceParams.shape.deviceId,
    challengeId: z.string().regex(/^pch[A-Za-z0-9]{17}$/, 'not a push id'),
  })
  .strict();
const enrollBody = z
  .object({
    activationCode: z.string().min(20).max(200),
    name: z.string().min(1).max(200),
    publicKey: z.record(z.string(), z.unknown()),
  })
  .strict();
const answerBody = z
  .object({
    decision: z.enum(['APPROVE', 'DENY']),
    number: z.number().int().min(0).max(999).nullable().optional(),
    signature: z.string().min(1).max(200),
  })
  .strict()
  .refine((b) => (b.decision === 'APPROVE') === (typeof b.number === 'number'), {
    message: 'number: required to approve, absent to deny',
  });

/** Heartbeats keep proxies from closing an idle stream; the device reconnects when they stop. */
const HEARTBEAT_MS = 15_000;
/** The database is read again this often even without a signal (a lost NOTIFY only delays). */
const RECHECK_MS = 10_000;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * The device side of push (`traqs-verify`): enrollment with the activation code, the event stream
 * of pushes (server-sent events), the signed answers, and the device list and removal. Devices
 * authenticate with `Authorization: Bearer <device token>`, stored only as its SHA-256.
 */
export function registerPushDeviceApi(app: FastifyInstance, push: PushFactor): void {
  const streams = new Set<ServerResponse>();
  // Open event streams would hold `close()` until they end by themselves.
  app.addHook('preClose', async () => {
    for (const res of streams) res.end();
  });

  async function authenticate(req: FastifyRequest): Promise<PushDeviceRow> {
    const { deviceId } = parseBody(deviceParams, req.params);
    const header = req.headers.authorization ?? '';
    const token = /^Bearer ([A-Za-z0-9_-]+)$/.exec(header)?.[1];
    const device = token ? await push.authenticateDevice(deviceId, token) : undefined;
    if (!device) throw new AppError('INVALID_TOKEN', ['Unknown device or device token. Enroll the device again.']);
    return device;
  }

  const deviceJson = (d: PushDeviceRow) => ({
    id: d.id,
    name: d.name,
    factorId: d.factor_id,
    created: iso(d.created_at),
    lastSeen: iso(d.last_seen_at),
  });

  // The activation link opened in a browser: it is meant for the authenticator.
  app.get('/verify/activate', async (_req, reply) =>
    reply
      .type('text/plain; charset=utf-8')
      .send(
        'This is an activation link for traqs-verify, the TRAQS authenticator.\n' +
          'Copy the whole link from your browser address bar and run:\n\n  traqs-verify enroll "<link>"\n',
      ),
  );

  app.register(async (api) => {
    api.addHook('preHandler', requireJson);

    api.post('/api/v1/devices', async (req, reply) => {
      const body = parseBody(enrollBody, req.body);
      const result = await push.enrollDevice(body, requestContext(req));
      if (!result.ok) {
        if (result.reason.startsWith('The activation code')) throw new AppError('INVALID_TOKEN', [], result.reason);
        throw new AppError('VALIDATION', [result.reason]);
      }
      return reply.status(201).send({
        ...deviceJson(result.device),
        deviceToken: result.deviceToken,
        user: { login: result.user.login },
        totp: result.totp,
      });
    });

    api.get('/api/v1/devices/:deviceId', async (req) => {
      const device = await authenticate(req);
      const all = await push.listDevices(device.user_id);
      return {
        ...deviceJson(device),
        devices: all.map((d) => ({ ...deviceJson(d), current: d.id === device.id })),
      };
    });

    api.delete('/api/v1/devices/:deviceId', async (req, reply) => {
      const device = await authenticate(req);
      if (!(await push.removeDevice(device, requestContext(req)))) throw new AppError('NOT_FOUND');
      return reply.status(204).send();
    });

    api.post('/api/v1/devices/:deviceId/pushes/:challengeId/answer', async (req) => {
      const { challengeId } = parseBody(answerParams, req.params);
      const device = await authenticate(req);
      const body = parseBody(answerBody, req.body);
      const result = await push.answer(
        device,
        { challengeId, decision: body.decision, number: body.number ?? null, signature: body.signature },
        requestContext(req),
      );
      if (!result.ok) {
        const name = result.status === 401 ? 'INVALID_TOKEN' : result.status === 404 ? 'NOT_FOUND' : 'WRONG_STATE';
        throw new AppError(name, [result.reason], result.reason);
      }
      return { outcome: result.outcome, ...(result.reportUrl ? { reportUrl: result.reportUrl } : {}) };
    });

    // Server-sent events (WHATWG HTML §9.2): every push waiting on connect, then each new one.
    api.get('/api/v1/devices/:deviceId/events', async (req, reply) => {
      const device = await authenticate(req);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-content-type-options': 'nosniff',
        'x-accel-buffering': 'no',
      });
      streams.add(res);
      const sent = new Set<string>();
      let chain = Promise.resolve();
      const flush = () => {
        chain = chain
          .then(async () => {
            const pending = await push.pendingPushes(device);
            // Removed meanwhile: the device reconnects, is refused (401) and says so.
            if (!pending) res.end();
            for (const p of pending ?? []) {
              if (sent.has(p.id) || res.writableEnded) continue;
              sent.add(p.id);
              res.write(`id: ${p.id}\nevent: push\ndata: ${JSON.stringify(p)}\n\n`);
            }
          })
          .catch((err: unknown) => req.log.warn({ err }, 'Reading pushes for a device failed'));
      };
      res.write(`retry: 2000\nevent: ready\ndata: ${JSON.stringify({ deviceId: device.id })}\n\n`);
      flush();
      const unsubscribe = push.signals.subscribe(pushTopics.factor(device.factor_id), flush);
      const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), HEARTBEAT_MS);
      const recheck = setInterval(flush, RECHECK_MS);
      const cleanup = () => {
        unsubscribe();
        clearInterval(heartbeat);
        clearInterval(recheck);
        streams.delete(res);
      };
      res.on('close', cleanup);
    });
  });
}
