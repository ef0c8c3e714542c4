// Scratch (not part of the deliverable): server main-thread CPU per sign-in without Argon2id.
import { buildIdp } from '../src/app.ts';
import { loadPasswordBlocklist } from '../src/authn/factors/password/policy.ts';
import { createAuthnService } from '../src/authn/service.ts';
import { createSecretBox } from '../src/lib/secret-box.ts';
import { createUsers, enrollTemplateUser, runSignInLoad, startIdp } from './idp.ts';

const level = process.argv[2] ?? 'info';
const seconds = Number(process.argv[3] ?? 8);
const profile = process.argv[4] === 'prof';
const idp = await startIdp({ logLevel: level });
const template = await enrollTemplateUser(idp);
const users = await createUsers(idp, template, 6000);
const rt = idp.rt;
const authn = createAuthnService({
  store: rt.store,
  config: rt.config,
  environment: rt.environment,
  clock: rt.clock,
  random: rt.random,
  passwords: {
    hash: rt.passwords.hash,
    verify: async () => ({ ok: true, needsRehash: false }),
    verifyDummy: rt.passwords.verifyDummy,
  },
  secretBox: createSecretBox(rt.keys.secretBoxKey),
  blocklist: loadPasswordBlocklist(),
  notifier: rt.notifier,
});
const app = await buildIdp({ ...rt, authn });
await app.listen({ host: '127.0.0.1', port: 0 });
const a = app.server.address();
if (!a || typeof a === 'string') throw new Error('x');
const { load, server } = await runSignInLoad(
  { ...idp, origin: `http://127.0.0.1:${a.port}` },
  { users, concurrency: 8, warmupSeconds: 2, seconds, cpuProfile: profile },
);
const n = load.completed;
console.log(
  JSON.stringify({
    level,
    n,
    rate: n / (load.windowMs / 1000),
    errors: load.errorsTotal,
    mainCpuPerSignIn: (server.mainThreadCpuMs ?? 0) / n,
    procCpuPerSignIn: server.processCpuMs / n,
    clientCpuPerSignIn: load.cpuMs / n,
    elu: server.eventLoopUtilization,
    othersPct: (((server.otherProcessesCpuMs ?? 0) - load.cpuMs) / server.wallMs / 2) * 100,
  }),
);
await app.close();
await idp.close();
