import { EventEmitter } from 'node:events';
import pg from 'pg';

/**
 * Prompt wake-ups between the node that changes a push and the nodes that wait for it: a new push
 * for a device whose event stream is held by another node, an answer for a sign-in polled on
 * another node. Only ids travel; every reader re-reads the database, so a lost signal delays,
 * never falsifies (polling stays correct without any signal).
 */
export interface PushSignals {
  /** Tells every node (this one included) that something about `topic` changed. */
  publish(topic: string): Promise<void>;
  /** Calls `listener` on each signal for `topic`; returns the unsubscribe function. */
  subscribe(topic: string, listener: () => void): () => void;
  close(): Promise<void>;
}

/** Topics: a device's factor (a new push for it) and a challenge (it was answered). */
export const pushTopics = {
  factor: (factorId: string) => `f:${factorId}`,
  challenge: (challengeId: string) => `c:${challengeId}`,
};

function createLocalBus() {
  const bus = new EventEmitter();
  // One listener per open device stream or waiting request: no fixed bound.
  bus.setMaxListeners(0);
  return {
    emit: (topic: string) => {
      bus.emit(topic);
    },
    subscribe(topic: string, listener: () => void) {
      bus.on(topic, listener);
      return () => {
        bus.off(topic, listener);
      };
    },
  };
}

/** One process (SQLite, or a single node): an in-memory event bus. */
export function createInProcessSignals(): PushSignals {
  const bus = createLocalBus();
  return {
    async publish(topic) {
      bus.emit(topic);
    },
    subscribe: bus.subscribe,
    async close() {},
  };
}

const TOPIC = /^[a-z]:[A-Za-z0-9]{1,40}$/;

/**
 * Several nodes on one PostgreSQL: `NOTIFY` on a channel per schema, `LISTEN` on a dedicated
 * connection (a pooled one would lose its LISTEN when handed back). The listening connection
 * reconnects with backoff; while it is down, waiting readers still poll the database.
 */
export function createPostgresSignals(
  connectionString: string,
  options: { schema?: string | undefined; onError?: (err: unknown) => void } = {},
): PushSignals {
  const channel = `traqs_push_${options.schema ?? 'public'}`;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) throw new Error(`Invalid push channel name: ${channel}`);
  const bus = createLocalBus();
  const pool = new pg.Pool({ connectionString, max: 2 });
  let listener: pg.Client | undefined;
  let closed = false;
  let backoff = 250;
  let ready: Promise<void>;

  const connect = async (): Promise<void> => {
    const client = new pg.Client({ connectionString });
    client.on('notification', (msg) => {
      if (msg.channel === channel && msg.payload && TOPIC.test(msg.payload)) bus.emit(msg.payload);
    });
    client.on('error', (err) => {
      options.onError?.(err);
      if (listener === client) listener = undefined;
      void client.end().catch(() => undefined);
      if (!closed) reconnect();
    });
    await client.connect();
    await client.query(`LISTEN ${channel}`);
    listener = client;
    backoff = 250;
  };
  const reconnect = () => {
    const wait = backoff;
    backoff = Math.min(backoff * 2, 10_000);
    setTimeout(() => {
      if (closed) return;
      ready = connect().catch((err: unknown) => {
        options.onError?.(err);
        reconnect();
      });
    }, wait).unref();
  };
  ready = connect().catch((err: unknown) => {
    options.onError?.(err);
    reconnect();
  });

  return {
    async publish(topic) {
      if (!TOPIC.test(topic)) throw new Error(`Invalid push topic: ${topic}`);
      await pool.query('SELECT pg_notify($1, $2)', [channel, topic]);
    },
    subscribe: bus.subscribe,
    async close() {
      closed = true;
      await ready;
      await listener?.end().catch(() => undefined);
      await pool.end();
    },
  };
}
