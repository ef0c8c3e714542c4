#!/usr/bin/env node
// Runs the TypeScript download client through tsx, so `npx traqs-download` works from a plain `npm install`.
import { register } from 'tsx/esm/api';

register();
const { runFromProcess } = await import('../src/download-client/main.ts');
process.exitCode = await runFromProcess();
