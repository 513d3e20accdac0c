#!/usr/bin/env node
// The client-matrix driver for kafkajs (see tests/common/client_matrix.rs for the contract):
//   node driver.js produce bootstrap=B topic=T count=N [idempotent=true] [acks=all] [rate=R] [key_prefix=K] [SASL]
//   node driver.js consume bootstrap=B topic=T group=G count=N [protocol=classic] [timeout_ms=M] [SASL]
//   SASL: user=U password=P mechanism=PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 (SASL_PLAINTEXT)
// JSON lines on stdout, the last one the result; kafkajs's own log goes to stderr.
// kafkajs itself is installed by scripts/install-deps.sh into $FRANZGATE_TOOLS/clients/kafkajs (npm ci of
// this directory's lockfile), so it is loaded from there rather than from a node_modules beside this file.
'use strict';

const path = require('path');
const os = require('os');
const { createRequire } = require('module');

const TOOLS = process.env.FRANZGATE_TOOLS || path.join(os.homedir(), '.cache/franzgate-tools');
const fromTools = createRequire(path.join(TOOLS, 'clients/kafkajs/package.json'));
const { Kafka, logLevel } = fromTools('kafkajs');
const VERSION = fromTools('kafkajs/package.json').version;

const COMMON_KEYS = ['bootstrap', 'topic', 'user', 'password', 'mechanism'];
const KEYS = {
  produce: [...COMMON_KEYS, 'count', 'idempotent', 'acks', 'rate', 'key_prefix'],
  consume: [...COMMON_KEYS, 'group', 'count', 'protocol', 'timeout_ms'],
};

function fail(message) {
  process.stderr.write(`driver: ${message}\n`);
  process.exit(2);
}

function emit(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function parseArgs(command, pairs) {
  if (!KEYS[command]) fail(`unknown command ${JSON.stringify(command)} (produce or consume)`);
  const options = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at < 1) fail(`argument ${JSON.stringify(pair)} is not key=value`);
    const key = pair.slice(0, at);
    if (!KEYS[command].includes(key)) fail(`unknown key ${JSON.stringify(key)} for ${command}`);
    options[key] = pair.slice(at + 1);
  }
  for (const needed of ['bootstrap', 'topic', 'count', ...(command === 'consume' ? ['group'] : [])]) {
    if (options[needed] === undefined) fail(`${needed}= is required for ${command}`);
  }
  return options;
}

function number(options, key, fallback) {
  if (options[key] === undefined) return fallback;
  const n = Number(options[key]);
  if (!Number.isFinite(n) || n < 0) fail(`${key}=${options[key]} is not a non-negative number`);
  return n;
}

// kafkajs's default logger writes to stdout (console.info); stdout is the driver's JSON channel.
function stderrLogCreator() {
  return ({ namespace, level, label, log }) => {
    const { message, ...extra } = log;
    process.stderr.write(`[kafkajs ${label} ${namespace}] ${message} ${JSON.stringify(extra)}\n`);
  };
}

function client(options) {
  const config = {
    clientId: 'franzgate-matrix-kafkajs',
    brokers: options.bootstrap.split(','),
    // KAFKAJS_DRIVER_LOG=info|debug (inherited from the test) shows more of kafkajs's own log on stderr.
    logLevel: logLevel[(process.env.KAFKAJS_DRIVER_LOG || 'warn').toUpperCase()] ?? logLevel.WARN,
    logCreator: stderrLogCreator,
  };
  if (options.user !== undefined || options.mechanism !== undefined) {
    const mechanism = (options.mechanism || 'PLAIN').toLowerCase();
    if (!['plain', 'scram-sha-256', 'scram-sha-512'].includes(mechanism)) fail(`mechanism=${options.mechanism}`);
    config.sasl = { mechanism, username: options.user || '', password: options.password || '' };
  }
  return new Kafka(config);
}

function describe(error) {
  const name = error && error.name ? error.name : 'Error';
  const cause = error && error.cause ? ` (cause: ${describe(error.cause)})` : '';
  return `${name}: ${error && error.message ? error.message : String(error)}${cause}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Sends in batches (one `send` per batch, awaited before the next: with idempotence kafkajs allows one
// request in flight), paced so that at most `rate` records per second leave when `rate` is given.
async function produce(options) {
  const count = number(options, 'count', 0);
  const rate = number(options, 'rate', 0);
  const idempotent = options.idempotent === 'true';
  const acks = options.acks === undefined || options.acks === 'all' ? -1 : Number(options.acks);
  const prefix = options.key_prefix || 'key';
  const producer = client(options).producer(
    idempotent ? { idempotent: true, maxInFlightRequests: 1 } : { allowAutoTopicCreation: false },
  );
  const errors = [];
  let produced = 0;
  let nextProgress = 100;
  await producer.connect();
  const started = Date.now();
  let next = 0;
  while (next < count) {
    let batchEnd = Math.min(count, next + 50);
    if (rate > 0) {
      const allowed = Math.floor(((Date.now() - started) / 1000) * rate) + 1;
      if (allowed <= next) {
        await sleep(Math.max(1, Math.ceil(((next + 1 - allowed) / rate) * 1000)));
        continue;
      }
      batchEnd = Math.min(batchEnd, allowed);
    }
    const messages = [];
    for (let i = next; i < batchEnd; i += 1) {
      messages.push({ key: `${prefix}-${i}`, value: `${prefix}-${i}` });
      if ((i + 1) % 100 === 0) emit({ sent: i + 1 });
    }
    try {
      await producer.send({ topic: options.topic, acks, messages });
      produced += messages.length;
      while (produced >= nextProgress) {
        emit({ acked: produced });
        nextProgress += 100;
      }
    } catch (error) {
      errors.push(describe(error));
    }
    next = batchEnd;
  }
  await producer.disconnect();
  return { produced, errors };
}

// Consumes in group `group` with kafkajs's auto-commit (offsets committed after every batch) until `count`
// distinct keys were seen or `timeout_ms` passed, then commits once more on the way out.
async function consume(options) {
  if (options.protocol !== undefined && options.protocol !== 'classic') {
    fail(`protocol=${options.protocol}: kafkajs ${VERSION} implements only the classic group protocol (no KIP-848)`);
  }
  const count = number(options, 'count', 0);
  const timeoutMs = number(options, 'timeout_ms', 60000);
  const consumer = client(options).consumer({ groupId: options.group });
  const keys = new Set();
  const errors = [];
  const recovered = [];
  let seen = 0;
  let nextProgress = 100;
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  // A crash kafkajs restarts from is not seen by an application; one it does not restart from ends consuming.
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (payload.restart) {
      recovered.push(describe(payload.error));
    } else {
      errors.push(describe(payload.error));
      done();
    }
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [options.topic], fromBeginning: true });
  const timer = setTimeout(done, timeoutMs);
  await consumer.run({
    eachMessage: async ({ message }) => {
      keys.add(message.key === null ? '' : message.key.toString());
      seen += 1;
      if (seen >= nextProgress) {
        emit({ consumed: seen });
        nextProgress += 100;
      }
      if (keys.size >= count) done();
    },
  });
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  return { consumed: keys.size, records: seen, keys: [...keys].sort(), errors, recovered };
}

async function main() {
  const [command, ...pairs] = process.argv.slice(2);
  const options = parseArgs(command, pairs);
  let result;
  try {
    result = command === 'produce' ? await produce(options) : await consume(options);
  } catch (error) {
    emit({ client: 'kafkajs', version: VERSION, errors: [describe(error)] });
    process.stderr.write(`driver: ${command} failed: ${describe(error)}\n${error && error.stack}\n`);
    process.exit(1);
  }
  emit({ client: 'kafkajs', version: VERSION, ...result });
  const complete = command === 'produce' ? result.produced === number(options, 'count', 0) : result.consumed >= number(options, 'count', 0);
  process.exit(result.errors.length === 0 && complete ? 0 : 1);
}

main();
