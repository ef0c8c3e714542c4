import { ConfigError } from './config/load.ts';
import { serve } from './serve.ts';

/** `npm start`: both environments in one process (DESIGN, "Environments"). */
try {
  const running = await serve();
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      void running.stop().then(() => process.exit(0));
    });
  }
} catch (err) {
  if (err instanceof ConfigError) console.error(err.message);
  else console.error(err);
  process.exit(1);
}
