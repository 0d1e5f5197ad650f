'use strict';
// The pure-JS ali-ons client (npm, unpatched) against a name server and broker,
// one line per scenario as the Java drivers print them:
//   scenario=NAME ok ...   or   scenario=NAME FAIL <what went wrong>
//
// usage: node ali_ons_scenarios.js <namesrvAddr> <topicPrefix> <scenario>...
// Scenarios (topic <prefix><Suffix>, created by the caller with 4 queues):
//   send-consume  (Sends)   20 sync sends, one push consumer receives each once
//   filters       (Filter)  tag "TagA || TagB" and SQL92 "a BETWEEN 3 AND 6"
//   broadcast     (Bcast)   two broadcasting consumers of one group each get all 10
//   retry         (Retry)   ACTION_RETRY once: the message comes back (reconsumeTimes 1)
//   delay         (Delay)   delay level 2 (5 s): not before 5 s
// Exit 0 when all passed, 1 otherwise, 2 on bad usage. Every wait has a deadline.

const { Producer, Consumer, Message } = require('ali-ons');

const [ns, prefix, ...scenarios] = process.argv.slice(2);
if (!ns || !prefix || scenarios.length === 0) {
  console.error('usage: node ali_ons_scenarios.js <namesrvAddr> <topicPrefix> <scenario>...');
  process.exit(2);
}

const quiet = process.env.ONS_DEBUG ? console : { info() {}, debug() {}, warn() {}, error(...a) { console.error(...a); } };
let instance = 0;

function common(extra) {
  instance += 1;
  return Object.assign({
    nameSrv: ns,
    // required even with nameSrv; only used to poll an address server
    httpclient: { async request() { throw new Error('no address server here'); } },
    accessKeyId: 'compat',
    accessKeySecret: 'compat',
    clientIP: '127.0.0.1',
    instanceName: `ons${process.pid}_${instance}`,
    logger: quiet,
    rebalanceInterval: 2000,
  }, extra);
}

async function waitFor(seconds, cond) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise(r => setTimeout(r, 200));
  }
  return cond();
}

async function withProducer(fn) {
  const producer = new Producer(common({ producerGroup: `PG_${prefix}_${instance + 1}` }));
  producer.on('error', e => console.error('producer error', e && e.message));
  await producer.ready();
  try {
    return await fn(producer);
  } finally {
    await producer.close();
  }
}

function consumer(group, topic, expr, handler, extra) {
  const c = new Consumer(common(Object.assign({
    consumerGroup: group,
    consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
  }, extra)));
  c.on('error', e => console.error('consumer error', e && e.message));
  c.subscribe(topic, expr, handler);
  return c;
}

async function send(producer, topic, tag, body, props) {
  const m = new Message(topic, tag, body);
  Object.assign(m.properties, props || {});
  const r = await producer.send(m);
  if (r.sendStatus !== 'SEND_OK') throw new Error(`send ${body}: ${r.sendStatus}`);
  return r;
}

async function sendConsume() {
  const topic = `${prefix}Sends`;
  const want = new Set();
  const got = new Map();
  await withProducer(async p => {
    for (let i = 0; i < 20; i++) {
      await send(p, topic, 'TagA', `m-${i}`);
      want.add(`m-${i}`);
    }
  });
  const c = consumer(`CG_${prefix}_sends`, topic, '*', async msg => {
    const k = msg.body.toString();
    got.set(k, (got.get(k) || 0) + 1);
  });
  try {
    await c.ready();
    await waitFor(60, () => [...want].every(k => got.has(k)));
  } finally {
    await c.close();
  }
  const missing = [...want].filter(k => !got.has(k));
  const dup = [...got].filter(([, n]) => n > 1).map(([k]) => k);
  if (missing.length || dup.length) {
    return `FAIL received ${got.size}/20 missing=${missing.slice(0, 5)} duplicated=${dup.slice(0, 5)}`;
  }
  return 'ok received=20';
}

async function filters() {
  const topic = `${prefix}Filter`;
  const tags = ['TagA', 'TagB', 'TagC'];
  await withProducer(async p => {
    for (let i = 0; i < 30; i++) {
      await send(p, topic, tags[i % 3], `f-${i}`, { a: String(i % 10) });
    }
  });
  const byTag = new Set();
  const bySql = new Set();
  const c1 = consumer(`CG_${prefix}_tag`, topic, 'TagA || TagB', async msg => {
    byTag.add(msg.body.toString());
  });
  const c2 = consumer(`CG_${prefix}_sql`, topic,
    { expressionType: 'SQL92', subString: 'a BETWEEN 3 AND 6' },
    async msg => { bySql.add(msg.body.toString()); });
  const wantTag = new Set();
  const wantSql = new Set();
  for (let i = 0; i < 30; i++) {
    if (i % 3 !== 2) wantTag.add(`f-${i}`);
    if (i % 10 >= 3 && i % 10 <= 6) wantSql.add(`f-${i}`);
  }
  try {
    await Promise.all([c1.ready(), c2.ready()]);
    await waitFor(60, () => byTag.size >= wantTag.size && bySql.size >= wantSql.size);
    // a little longer so a message that should have been filtered out shows up
    await waitFor(2, () => false);
  } finally {
    await c1.close();
    await c2.close();
  }
  const extraTag = [...byTag].filter(k => !wantTag.has(k));
  const extraSql = [...bySql].filter(k => !wantSql.has(k));
  if (byTag.size - extraTag.length !== wantTag.size || extraTag.length) {
    return `FAIL tag filter got ${byTag.size} want ${wantTag.size} unexpected=${extraTag.slice(0, 5)}`;
  }
  if (bySql.size - extraSql.length !== wantSql.size || extraSql.length) {
    return `FAIL SQL92 filter got ${bySql.size} want ${wantSql.size} unexpected=${extraSql.slice(0, 5)}`;
  }
  return `ok tag=${byTag.size} sql=${bySql.size}`;
}

async function broadcast() {
  const topic = `${prefix}Bcast`;
  const group = `CG_${prefix}_bcast`;
  const a = new Set();
  const b = new Set();
  const c1 = consumer(group, topic, '*', async msg => { a.add(msg.body.toString()); }, { isBroadcast: true });
  const c2 = consumer(group, topic, '*', async msg => { b.add(msg.body.toString()); }, { isBroadcast: true });
  try {
    await Promise.all([c1.ready(), c2.ready()]);
    // broadcasting consumers start at the queue's end: send once both pull
    await waitFor(5, () => false);
    await withProducer(async p => {
      for (let i = 0; i < 10; i++) await send(p, topic, 'TagA', `b-${i}`);
    });
    await waitFor(60, () => a.size >= 10 && b.size >= 10);
  } finally {
    await c1.close();
    await c2.close();
  }
  return a.size === 10 && b.size === 10 ? 'ok each=10' : `FAIL consumer1=${a.size}/10 consumer2=${b.size}/10`;
}

async function retry() {
  const topic = `${prefix}Retry`;
  const seen = [];
  const c = consumer(`CG_${prefix}_retry`, topic, '*', async msg => {
    seen.push({ at: Date.now(), times: msg.reconsumeTimes });
    return seen.length === 1 ? Consumer.ACTION_RETRY : undefined;
  });
  try {
    await c.ready();
    await withProducer(async p => send(p, topic, 'TagA', 'r-0'));
    await waitFor(90, () => seen.length >= 2);
  } finally {
    await c.close();
  }
  if (seen.length < 2) return `FAIL delivered ${seen.length} times, want a redelivery`;
  if (seen[1].times !== 1) return `FAIL redelivered with reconsumeTimes=${seen[1].times}`;
  return `ok redelivered after ${seen[1].at - seen[0].at} ms`;
}

async function delay() {
  const topic = `${prefix}Delay`;
  let sentAt = 0;
  let gotAt = 0;
  const c = consumer(`CG_${prefix}_delay`, topic, '*', async () => { gotAt = gotAt || Date.now(); });
  try {
    await c.ready();
    await withProducer(async p => {
      const m = new Message(topic, 'TagA', 'd-0');
      m.delayTimeLevel = 2;
      sentAt = Date.now();
      const r = await p.send(m);
      if (r.sendStatus !== 'SEND_OK') throw new Error(`send: ${r.sendStatus}`);
    });
    await waitFor(40, () => gotAt > 0);
  } finally {
    await c.close();
  }
  if (!gotAt) return 'FAIL the level-2 message never arrived';
  const ms = gotAt - sentAt;
  if (ms < 4900) return `FAIL arrived after ${ms} ms, before the 5 s of level 2`;
  return `ok after ${ms} ms`;
}

const table = { 'send-consume': sendConsume, filters, broadcast, retry, delay };

(async () => {
  let allOk = true;
  for (const s of scenarios) {
    const t0 = Date.now();
    let verdict;
    try {
      verdict = table[s] ? await table[s]() : 'FAIL unknown scenario';
    } catch (e) {
      verdict = `FAIL exception ${e && e.message}`;
    }
    allOk = allOk && verdict.startsWith('ok');
    console.log(`scenario=${s} ${verdict} (${Date.now() - t0} ms)`);
  }
  process.exit(allOk ? 0 : 1);
})();
