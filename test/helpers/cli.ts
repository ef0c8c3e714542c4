import { Command } from 'commander';
import { vi } from 'vitest';
import type { OpenEnvironment } from '../../src/admin/cli.ts';
import type { EnvironmentRuntime } from '../../src/app.ts';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/**
 * Runs `traqs …` through commander as the CLI does, with the commands `register` adds, against a
 * test environment (`open` is asked for the `--env` given); stdout and stderr are captured.
 */
export async function runTraqs(
  register: (program: Command, open: OpenEnvironment) => void,
  open: (envId: string) => EnvironmentRuntime,
  args: string[],
): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  const program = new Command('traqs').exitOverride();
  program.configureOutput({ writeErr: (t) => void err.push(t), writeOut: (t) => void out.push(t) });
  register(program, async (envId, work) => work(open(envId)));
  let code = 0;
  try {
    await program.parseAsync(['node', 'traqs', ...args]);
    code = Number(process.exitCode ?? 0);
  } catch (e) {
    code = (e as { exitCode?: number }).exitCode ?? 1;
  }
  vi.restoreAllMocks();
  process.exitCode = undefined;
  return { code, out: out.join('\n'), err: err.join('\n') };
}
