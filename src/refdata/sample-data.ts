import type { EnvironmentRuntime } from '../app.ts';
import { businessDaysEndingOn, utcDate } from './business-days.ts';
import { FACILITIES } from './facilities.ts';
import { openFileStore } from './file-store.ts';
import type { ReferenceFileRow } from './repository.ts';
import { createRefdataService } from './service.ts';

export interface SampleDataOptions {
  /** Business days to generate, ending today (UTC). Default 5. */
  days?: number;
  /** The current time, epoch ms; default the runtime's clock. */
  now?: number;
}

/**
 * First start: when the catalog is empty, generates every facility's files for the last `days`
 * business days, so the quick start has data to download. Returns what it generated (nothing
 * when the catalog already had files). Two nodes starting together both generate the same
 * bytes (the generator is deterministic) and the catalog keeps one entry per file.
 */
export async function ensureSampleData(
  rt: Pick<EnvironmentRuntime, 'config' | 'environment' | 'store' | 'clock' | 'random'>,
  options: SampleDataOptions = {},
): Promise<ReferenceFileRow[]> {
  if (await rt.store.repos.refdata.hasFiles()) return [];
  const now = options.now ?? rt.clock();
  const service = createRefdataService({ store: rt.store, files: openFileStore(rt), clock: () => now });
  const made: ReferenceFileRow[] = [];
  for (const date of businessDaysEndingOn(utcDate(now), options.days ?? 5)) {
    for (const facility of FACILITIES) {
      for (const kind of facility.files) {
        made.push(
          await service.generate({ facility: facility.code, file: kind.code, date }, { actorId: null, via: 'startup' }),
        );
      }
    }
  }
  return made;
}
