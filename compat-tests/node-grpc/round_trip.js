// One produce + SimpleConsumer receive/ack round trip with the official
// RocketMQ 5 Node.js gRPC client (rocketmq-client-nodejs), for
// compat-tests/tests/grpc_go_node_clients.rs. Prints, one per line:
//
//   SENT <key> <messageId>            a send the server acknowledged
//   GOT <key> <messageId> <attempt>   a received message
//   ACKED <key>                       an ack the server accepted
//   WARN <text>                       a failed receive (retried)
//   DONE                              every message sent was received and acked
//   FATAL <text>                      then exits 1
//
// Usage: node round_trip.js <endpoint> <topic> <consumerGroup> <runId> [count]
'use strict';

const { Producer, SimpleConsumer } = require('rocketmq-client-nodejs');

const [endpoint, topic, group, runId, countArg] = process.argv.slice(2);
if (!endpoint || !topic || !group || !runId) {
  console.error('usage: node round_trip.js <endpoint> <topic> <consumerGroup> <runId> [count]');
  process.exit(2);
}
const count = Number(countArg || 3);
// The long-polling time of a receive: a Java proxy refuses polls under 5 s.
const awaitDuration = 5000;
// The minimum invisible duration a Java proxy accepts for a receive.
const invisibleDuration = 10000;
const deadline = Date.now() + 60000;

// The client logs to ~/logs/rocketmq; nothing on stdout but our lines.
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

function line(s) {
  process.stdout.write(s + '\n');
}

function oneLine(err) {
  return String(err && err.message ? err.message : err).split(/\s+/).join(' ');
}

async function main() {
  const producer = new Producer({ endpoints: endpoint, namespace: '', topics: [ topic ], logger: quiet });
  await producer.startup();
  const keys = [];
  for (let i = 0; i < count; i++) {
    const key = `${runId}-node${i}`;
    const receipt = await producer.send({
      topic,
      tag: 'compat',
      keys: [ key ],
      body: Buffer.from(`body of ${key}`),
    });
    keys.push(key);
    line(`SENT ${key} ${receipt.messageId}`);
  }
  await producer.shutdown();

  const consumer = new SimpleConsumer({
    endpoints: endpoint,
    namespace: '',
    consumerGroup: group,
    subscriptions: new Map().set(topic, '*'),
    awaitDuration,
    logger: quiet,
  });
  await consumer.startup();
  const acked = new Set();
  let lastWarn = '';
  while (acked.size < keys.length && Date.now() < deadline) {
    let messages = [];
    try {
      messages = await consumer.receive(16, invisibleDuration);
    } catch (err) {
      const w = oneLine(err);
      if (w !== lastWarn) {
        lastWarn = w;
        line(`WARN receive: ${w}`);
      }
      await new Promise(r => setTimeout(r, 300));
      continue;
    }
    for (const m of messages) {
      const key = (m.keys && m.keys[0]) || '-';
      line(`GOT ${key} ${m.messageId} ${m.deliveryAttempt}`);
      await consumer.ack(m);
      line(`ACKED ${key}`);
      if (key.startsWith(`${runId}-`)) {
        acked.add(key);
      }
    }
  }
  await consumer.shutdown();
  if (acked.size < keys.length) {
    throw new Error(`received ${acked.size} of ${keys.length} messages before the deadline`);
  }
  line('DONE');
}

main().then(() => process.exit(0), err => {
  line(`FATAL ${oneLine(err)}`);
  process.exit(1);
});
