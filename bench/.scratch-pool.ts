process.env.UV_THREADPOOL_SIZE = process.argv[2] ?? '1';
const { hash, verify } = await import('@node-rs/argon2');
const h = await hash('x', { memoryCost: 19456, timeCost: 2, parallelism: 1 });
const t = async (k: number) => {
  const s = performance.now();
  await Promise.all(Array.from({ length: k }, () => verify(h, 'x')));
  return performance.now() - s;
};
await t(2);
const one = await t(1);
const four = await t(4);
console.log(
  `set in-process to ${process.argv[2]}; env-at-start=${process.env.START_POOL ?? '-'}: 1 verify ${one.toFixed(1)} ms, 4 concurrent ${four.toFixed(1)} ms => effective parallelism ${((4 * one) / four).toFixed(2)}`,
);
