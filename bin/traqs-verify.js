#!/usr/bin/env node
// Runs the TypeScript authenticator through tsx, so `npx traqs-verify` works from a plain `npm install`.
import { register } from 'tsx/esm/api';

register();
const { runFromProcess } = await import('../src/clients/verify/main.ts');
process.exitCode = await runFromProcess();
