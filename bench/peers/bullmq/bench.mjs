// The BullMQ peer of Conveyor's benchmark, run by the tool's `peers` scenario (bench/Conveyor.Bench), never by hand:
//   node bench.mjs worker --redis PORT [--concurrency 64]
//       a BullMQ Worker in its own process: each job is one step of a chain; starting it enqueues the next step's
//       job; the last step publishes "chain enqueuedMicros startedMicros" on a Redis channel. Prints "ready".
//   node bench.mjs client --redis PORT [--inflight 64] [--seconds 15] [--runs 1000]
//       starts ten-step chains, --inflight at a time (closed loop), for a warm-up of a fifth of --seconds and then
//       --seconds measured (chains that end inside the window count); then --runs one-step chains one at a time, for
//       jobs/s and enqueue -> worker start latency. Prints one line "result {json}".
// Jobs are removed once completed (removeOnComplete), so Redis holds only what is in flight.
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';

const args = process.argv.slice(2);
const mode = args[0];
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const connection = { host: '127.0.0.1', port: Number(option('redis', '6379')), maxRetriesPerRequest: null };
const queueName = 'bench-chains';
const doneChannel = 'bench:bullmq:done';
const jobOptions = { removeOnComplete: true, removeOnFail: 1000 };
const unixMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

async function worker() {
  const queue = new Queue(queueName, { connection });
  const publisher = new Redis(connection);
  const w = new Worker(queueName, async (job) => {
    const started = unixMicros();
    const { chain, step, steps, enqueued } = job.data;
    if (step < steps) {
      await queue.add('step', { chain, step: step + 1, steps, enqueued: unixMicros() }, jobOptions);
    } else {
      await publisher.publish(doneChannel, `${chain} ${enqueued} ${started}`);
    }
  }, { connection, concurrency: Number(option('concurrency', '64')) });
  await w.waitUntilReady();
  console.log('ready');
  // The tool closes stdin to stop us.
  process.stdin.resume();
  process.stdin.on('end', async () => {
    // Closing waits for Redis; if it is already gone, leave anyway.
    setTimeout(() => process.exit(0), 5000).unref();
    await w.close();
    await queue.close();
    publisher.disconnect();
    process.exit(0);
  });
}

async function client() {
  const inflight = Number(option('inflight', '64'));
  const seconds = Number(option('seconds', '15'));
  const runs = Number(option('runs', '1000'));
  const queue = new Queue(queueName, { connection });
  const subscriber = new Redis(connection);
  const waiting = new Map();
  await subscriber.subscribe(doneChannel);
  subscriber.on('message', (_, message) => {
    const [chain, enqueued, started] = message.split(' ');
    const done = waiting.get(chain);
    if (done) {
      waiting.delete(chain);
      done({ enqueued: Number(enqueued), started: Number(started) });
    }
  });
  let next = 0;
  const chain = async (steps) => {
    const id = `c${++next}`;
    const done = new Promise((resolve) => waiting.set(id, resolve));
    await queue.add('step', { chain: id, step: 1, steps, enqueued: unixMicros() }, jobOptions);
    return done;
  };

  const warmUp = Math.max(1, seconds / 5) * 1000;
  const measureFrom = Date.now() + warmUp;
  const stopAt = measureFrom + seconds * 1000;
  // The tool reads every process's CPU time when these lines come.
  setTimeout(() => console.log('window start'), warmUp);
  setTimeout(() => console.log('window end'), warmUp + seconds * 1000);
  let completed = 0;
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (Date.now() < stopAt) {
      await chain(10);
      const now = Date.now();
      if (now >= measureFrom && now < stopAt) {
        completed++;
      }
    }
  }));

  for (let i = 0; i < 10; i++) {
    await chain(1);
  }

  const latencies = [];
  const begin = performance.now();
  for (let i = 0; i < runs; i++) {
    const { enqueued, started } = await chain(1);
    latencies.push((started - enqueued) / 1000);
  }

  const elapsed = (performance.now() - begin) / 1000;
  latencies.sort((a, b) => a - b);
  const percentile = (p) => latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)];
  const result = {
    steps_per_s: (completed * 10) / seconds,
    c1_jobs_per_s: runs / elapsed,
    c1_start_p50_ms: percentile(0.5),
    c1_start_p99_ms: percentile(0.99),
  };
  console.log(`result ${JSON.stringify(result)}`);
  await subscriber.quit();
  await queue.close();
}

if (mode === 'worker') {
  await worker();
} else if (mode === 'client') {
  await client();
} else {
  console.error('usage: node bench.mjs worker|client --redis PORT [--concurrency C] [--inflight C] [--seconds S] [--runs N]');
  process.exit(2);
}
