import type { Store } from '../db/store.ts';
import type { Clock } from '../lib/tokens.ts';
import type { FileStore, PutOptions } from './file-store.ts';
import { type GenerateRequest, generateIntoStore } from './generate.ts';
import { type ImportRequest, importFile } from './import.ts';
import type { ReferenceFileRow } from './repository.ts';
import { assertWithinRetention, type PruneResult, pruneExpiredFiles } from './retention.ts';

/** Who asked: a user id, or null for an operator at the command line or the system itself. */
export interface Actor {
  actorId: string | null;
  /** `cli`, `startup`, `admin`… recorded in the audit event's details. */
  via: string;
}

export interface RefdataServiceDeps {
  store: Store;
  files: FileStore;
  clock: Clock;
}

const fileDetails = (row: ReferenceFileRow) => ({
  facility: row.facility,
  file: row.file,
  date: row.date,
  size: row.size,
  sha256: row.sha256,
  records: row.records,
});

/**
 * Reference-data changes with their audit events: generating, importing and pruning files, and
 * granting and revoking users' facility entitlements (issue #5). The CLI and the servers call
 * these; the pieces underneath (file store, generator, import, retention) do no auditing.
 */
export function createRefdataService(deps: RefdataServiceDeps) {
  const { store, files, clock } = deps;
  const audit = (actor: Actor, action: string, targetId: string | null, details: Record<string, unknown>) =>
    store.repos.audit.recordEvent({
      at: clock(),
      actorId: actor.actorId,
      action,
      targetId,
      outcome: 'success',
      ip: null,
      userAgent: null,
      details: { ...details, via: actor.via },
    });

  return {
    files,

    /** Generates one synthetic file into the store (see src/refdata/generate.ts). */
    async generate(request: GenerateRequest, actor: Actor, options?: PutOptions): Promise<ReferenceFileRow> {
      assertWithinRetention(request.date, clock());
      const row = await generateIntoStore(files, request, options);
      await audit(actor, 'refdata.file.generate', row.id, { ...fileDetails(row), rows: request.rows ?? null });
      return row;
    },

    /** Registers a real file (see src/refdata/import.ts). */
    async importFile(request: ImportRequest, actor: Actor, options?: PutOptions): Promise<ReferenceFileRow> {
      const row = await importFile(files, request, { ...options, now: clock() });
      await audit(actor, 'refdata.file.import', row.id, { ...fileDetails(row), source: request.source });
      return row;
    },

    /** Deletes files older than the retention year; one audit event per catalog entry deleted. */
    async prune(actor: Actor): Promise<PruneResult> {
      const result = await pruneExpiredFiles({ store: files, repo: store.repos.refdata, now: clock() });
      for (const row of result.deleted) {
        await audit(actor, 'refdata.file.delete', row.id, {
          ...fileDetails(row),
          reason: 'retention',
          cutoff: result.cutoff,
        });
      }
      return result;
    },

    /**
     * Entitles a user to facilities' files. Returns the facilities newly granted (already held
     * ones are left as they were, without an event). Facility codes must be valid (callers check).
     */
    async grantEntitlements(userId: string, facilities: readonly string[], actor: Actor): Promise<string[]> {
      return store.transaction(async (repos) => {
        const granted: string[] = [];
        for (const facility of facilities) {
          if (!(await repos.refdata.grantEntitlement(userId, facility, clock()))) continue;
          granted.push(facility);
          await repos.audit.recordEvent({
            at: clock(),
            actorId: actor.actorId,
            action: 'entitlement.grant',
            targetId: userId,
            outcome: 'success',
            ip: null,
            userAgent: null,
            details: { facility, via: actor.via },
          });
        }
        return granted;
      });
    },

    /** Takes facilities away from a user; returns those the user had. */
    async revokeEntitlements(userId: string, facilities: readonly string[], actor: Actor): Promise<string[]> {
      return store.transaction(async (repos) => {
        const revoked: string[] = [];
        for (const facility of facilities) {
          if (!(await repos.refdata.revokeEntitlement(userId, facility))) continue;
          revoked.push(facility);
          await repos.audit.recordEvent({
            at: clock(),
            actorId: actor.actorId,
            action: 'entitlement.revoke',
            targetId: userId,
            outcome: 'success',
            ip: null,
            userAgent: null,
            details: { facility, via: actor.via },
          });
        }
        return revoked;
      });
    },
  };
}
export type RefdataService = ReturnType<typeof createRefdataService>;
