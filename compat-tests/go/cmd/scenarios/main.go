// Command scenarios runs one Go-client feature scenario against a RocketMQ
// name server and broker and checks what the Go producer/consumers observe:
//
//	scenarios <name> -namesrv ADDR -broker-addr ADDR -topic T [-count N] [-timeout D]
//
// Names: send-modes, share, broadcast, orderly, tag-filter, sql92, transaction,
// retry, pull, admin. The topic is created with the admin API (8 queues) on -broker-addr.
//
// Output: "info:" lines, one "RESULT <name> ..." summary line, then "FAIL:"
// lines on failure. Exit status 0 on success, 1 otherwise. Every blocking call
// is bounded by -timeout; a watchdog ends the process shortly after it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

const (
	queues    = 8
	propQueue = "compatQ" // target queue id for the queue-id selector
	pollEvery = 50 * time.Millisecond
	budget    = 5 * time.Second // each client shutdown
)

type env struct {
	name     string
	namesrv  []string
	broker   string
	topic    string
	count    int
	runID    string
	ctx      context.Context
	failures []string
	mu       sync.Mutex
	closers  []func()
}

func main() { os.Exit(run()) }

func run() int {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: scenarios <name> -namesrv ADDR -broker-addr ADDR -topic T [-count N] [-timeout D]")
		return 1
	}
	name := os.Args[1]
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	ns := fs.String("namesrv", "127.0.0.1:9876", "name server address(es), ';' separated")
	broker := fs.String("broker-addr", "", "broker address for topic creation (required)")
	topic := fs.String("topic", "", "topic (required)")
	count := fs.Int("count", 40, "messages per kind")
	timeout := fs.Duration("timeout", 90*time.Second, "overall deadline")
	logLevel := fs.String("log-level", "warn", "client log level")
	clientLog := fs.String("client-log", "", "keep the client's log in this file (default: temporary, tail shown on failure)")
	if err := fs.Parse(os.Args[2:]); err != nil {
		return 1
	}
	if *broker == "" || *topic == "" || *count <= 0 {
		fmt.Fprintln(os.Stderr, "-broker-addr and -topic are required, -count must be positive")
		return 1
	}
	rlog.SetLogLevel(*logLevel)
	logDir, err := os.MkdirTemp("", "go-scenarios-log-")
	if *clientLog != "" {
		_ = rlog.SetOutputPath(*clientLog)
	} else if err == nil {
		_ = rlog.SetOutputPath(filepath.Join(logDir, "client.log"))
		defer os.RemoveAll(logDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	e := &env{name: name, namesrv: strings.Split(*ns, ";"), broker: *broker, topic: *topic,
		count: *count, runID: newRunID(), ctx: ctx}
	watchdog := time.AfterFunc(*timeout+4*budget, func() {
		fmt.Println("FAIL: watchdog: scenario did not finish in time")
		os.Exit(1)
	})
	defer watchdog.Stop()

	scenarios := map[string]func(*env) string{
		"send-modes":  sendModes,
		"share":       share,
		"broadcast":   broadcast,
		"orderly":     orderly,
		"tag-filter":  tagFilter,
		"sql92":       sql92,
		"transaction": transaction,
		"retry":       retry,
		"pull":        pull,
		"admin":       adminTopics,
	}
	f, ok := scenarios[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown scenario %q\n", name)
		return 1
	}
	fmt.Printf("info: scenario=%s run=%s topic=%s\n", name, e.runID, e.topic)
	summary := "setup failed"
	if err := e.createTopic(); err != nil {
		e.fail("topic setup: %v", err)
	} else {
		summary = f(e)
	}
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	fmt.Printf("RESULT %s %s\n", name, summary)
	for _, m := range e.failures {
		fmt.Printf("FAIL: %s\n", m)
	}
	if len(e.failures) > 0 {
		if logDir != "" {
			if data, err := os.ReadFile(filepath.Join(logDir, "client.log")); err == nil {
				lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
				if len(lines) > 40 {
					lines = lines[len(lines)-40:]
				}
				fmt.Fprintln(os.Stderr, strings.Join(lines, "\n"))
			}
		}
		return 1
	}
	return 0
}

func newRunID() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return hex.EncodeToString(b)
}

func (e *env) fail(format string, a ...interface{}) {
	e.mu.Lock()
	e.failures = append(e.failures, fmt.Sprintf(format, a...))
	e.mu.Unlock()
}

// bounded runs a blocking client call but gives up at the deadline.
func bounded(ctx context.Context, f func() error) error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("deadline reached inside a client call: %w", ctx.Err())
	}
}

func shutdownBounded(what string, f func() error, e *env) {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		if err != nil {
			e.fail("%s shutdown: %v", what, err)
		}
	case <-time.After(budget):
		e.fail("%s shutdown did not return within %s", what, budget)
	}
}

// waitFor polls cond until it holds or the deadline; returns whether it held.
func (e *env) waitFor(cond func() bool) bool {
	for {
		if cond() {
			return true
		}
		select {
		case <-e.ctx.Done():
			return cond()
		case <-time.After(pollEvery):
		}
	}
}

// hold keeps listening for d (bounded by the deadline): a negative observation window.
func (e *env) hold(d time.Duration) {
	select {
	case <-time.After(d):
	case <-e.ctx.Done():
	}
}

func (e *env) createTopic() error {
	adm, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver(e.namesrv)))
	if err != nil {
		return err
	}
	defer shutdownBounded("admin", adm.Close, e)
	err = bounded(e.ctx, func() error {
		return adm.CreateTopic(e.ctx, admin.WithTopicCreate(e.topic), admin.WithBrokerAddrCreate(e.broker),
			admin.WithReadQueueNums(queues), admin.WithWriteQueueNums(queues))
	})
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	n := 0
	ok := e.waitFor(func() bool {
		var mqs []*primitive.MessageQueue
		_ = bounded(e.ctx, func() error {
			var err error
			mqs, err = adm.FetchPublishMessageQueues(e.ctx, e.topic)
			return err
		})
		n = len(mqs)
		return n == queues
	})
	if !ok {
		return fmt.Errorf("route for %s has %d queue(s), want %d", e.topic, n, queues)
	}
	return nil
}

// ---------------------------------------------------------------- recording

type delivery struct {
	consumer       string
	key, tag, body string
	queueID        int
	reconsumeTimes int32
	at             time.Time
	born           int64
}

type recorder struct {
	mu   sync.Mutex
	list []delivery
}

func (r *recorder) add(who string, m *primitive.MessageExt) {
	d := delivery{consumer: who, key: m.GetKeys(), tag: m.GetTags(), body: string(m.Body),
		reconsumeTimes: m.ReconsumeTimes, at: time.Now(), born: m.BornTimestamp, queueID: -1}
	if m.Queue != nil {
		d.queueID = m.Queue.QueueId
	}
	r.mu.Lock()
	r.list = append(r.list, d)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.list...)
}

// counts: key -> deliveries, for keys carrying this run's id in the body.
func (r *recorder) counts(runID string, who string) map[string]int {
	out := map[string]int{}
	for _, d := range r.snapshot() {
		if strings.HasSuffix(d.body, runID) && (who == "" || d.consumer == who) {
			out[d.key]++
		}
	}
	return out
}

func (r *recorder) callback(who string, result consumer.ConsumeResult) func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	return func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, m := range msgs {
			r.add(who, m)
		}
		return result, nil
	}
}

// ----------------------------------------------------------------- clients

type consumerSpec struct {
	who      string
	group    string
	model    consumer.MessageModel
	orderly  bool
	selector consumer.MessageSelector
	extra    []consumer.Option
	cb       func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error)
}

// startConsumer starts a push consumer; the returned stop func is idempotent.
func (e *env) startConsumer(s consumerSpec) (func(), error) {
	opts := []consumer.Option{
		consumer.WithNsResolver(primitive.NewPassthroughResolver(e.namesrv)),
		consumer.WithGroupName(s.group),
		consumer.WithInstance("compat-go-" + s.who + "-" + e.runID),
		consumer.WithConsumerModel(s.model),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithConsumerOrder(s.orderly),
	}
	opts = append(opts, s.extra...)
	c, err := rocketmq.NewPushConsumer(opts...)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", s.who, err)
	}
	if err := c.Subscribe(e.topic, s.selector, s.cb); err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", s.who, err)
	}
	if err := bounded(e.ctx, c.Start); err != nil {
		shutdownBounded("consumer "+s.who, c.Shutdown, e)
		return nil, fmt.Errorf("start consumer %s: %w", s.who, err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { shutdownBounded("consumer "+s.who, c.Shutdown, e) }) }
	e.closers = append(e.closers, stop)
	return stop, nil
}

// queueIDSelector sends a message to the queue named by its compatQ property
// (falls back to the first queue).
type queueIDSelector struct{}

func (queueIDSelector) Select(m *primitive.Message, mqs []*primitive.MessageQueue, _ string) *primitive.MessageQueue {
	want, err := strconv.Atoi(m.GetProperty(propQueue))
	if err == nil {
		for _, q := range mqs {
			if q.QueueId == want {
				return q
			}
		}
	}
	return mqs[0]
}

func (e *env) startProducer(who string, extra ...producer.Option) (rocketmq.Producer, error) {
	opts := []producer.Option{
		producer.WithNsResolver(primitive.NewPassthroughResolver(e.namesrv)),
		producer.WithGroupName("GID_go_p_" + who + "_" + e.runID),
		producer.WithInstanceName("compat-go-p-" + who + "-" + e.runID),
		producer.WithRetry(2),
	}
	p, err := rocketmq.NewProducer(append(opts, extra...)...)
	if err != nil {
		return nil, err
	}
	if err := bounded(e.ctx, p.Start); err != nil {
		return nil, fmt.Errorf("start producer: %w", err)
	}
	e.closers = append(e.closers, func() { shutdownBounded("producer "+who, p.Shutdown, e) })
	return p, nil
}

func (e *env) msg(key, tag string) *primitive.Message {
	m := primitive.NewMessage(e.topic, []byte(key+"|"+e.runID))
	if tag != "" {
		m.WithTag(tag)
	}
	m.WithKeys([]string{key})
	return m
}

func (e *env) sendSync(p rocketmq.Producer, msgs ...*primitive.Message) error {
	var res *primitive.SendResult
	err := bounded(e.ctx, func() error {
		var err error
		res, err = p.SendSync(e.ctx, msgs...)
		return err
	})
	switch {
	case err != nil:
		return err
	case res == nil || res.Status != primitive.SendOK:
		return fmt.Errorf("send result %v", res)
	}
	return nil
}

// sendMarkers sends one message per queue (tag, key marker-<q>) through a
// queue-id producer; once all are consumed, every earlier message of the same
// queue has been through the filter.
func (e *env) sendMarkers(p rocketmq.Producer, tag string, props map[string]string) bool {
	for q := 0; q < queues; q++ {
		m := e.msg(fmt.Sprintf("marker-%d", q), tag)
		m.WithProperty(propQueue, strconv.Itoa(q))
		for k, v := range props {
			m.WithProperty(k, v)
		}
		if err := e.sendSync(p, m); err != nil {
			e.fail("send marker %d: %v", q, err)
			return false
		}
	}
	return true
}

func markersIn(c map[string]int) int {
	n := 0
	for q := 0; q < queues; q++ {
		if c[fmt.Sprintf("marker-%d", q)] > 0 {
			n++
		}
	}
	return n
}

// expectExactly fails unless every key in want was received exactly once and
// no key outside want (markers aside) was received.
func (e *env) expectExactly(label string, got map[string]int, want []string) {
	wantSet := map[string]bool{}
	var missing, dup, extra []string
	for _, k := range want {
		wantSet[k] = true
		switch n := got[k]; {
		case n == 0:
			missing = append(missing, k)
		case n > 1:
			dup = append(dup, fmt.Sprintf("%s x%d", k, n))
		}
	}
	for k, n := range got {
		if !wantSet[k] && !strings.HasPrefix(k, "marker-") {
			extra = append(extra, fmt.Sprintf("%s x%d", k, n))
		}
	}
	sort.Strings(extra)
	if len(missing) > 0 {
		e.fail("%s: missing %d: %s", label, len(missing), head(missing))
	}
	if len(dup) > 0 {
		e.fail("%s: duplicated %d: %s", label, len(dup), head(dup))
	}
	if len(extra) > 0 {
		e.fail("%s: unexpected %d: %s", label, len(extra), head(extra))
	}
}

func head(s []string) string {
	if len(s) > 15 {
		return strings.Join(s[:15], ", ") + fmt.Sprintf(", ... (%d more)", len(s)-15)
	}
	return strings.Join(s, ", ")
}

func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func all(got map[string]int, want []string) bool {
	for _, k := range want {
		if got[k] == 0 {
			return false
		}
	}
	return true
}

func (e *env) group(suffix string) string { return "GID_go_" + suffix + "_" + e.runID }

// ---------------------------------------------------------------- scenarios

// 1. SendSync, SendAsync, SendOneWay and a batch SendSync; one clustering consumer.
func sendModes(e *env) string {
	rec := &recorder{}
	if _, err := e.startConsumer(consumerSpec{who: "c", group: e.group("modes"), model: consumer.Clustering,
		selector: consumer.MessageSelector{Type: consumer.TAG, Expression: "*"},
		cb:       rec.callback("c", consumer.ConsumeSuccess)}); err != nil {
		e.fail("%v", err)
		return "consumer failed"
	}
	p, err := e.startProducer("modes")
	if err != nil {
		e.fail("%v", err)
		return "producer failed"
	}
	n := e.count
	for _, k := range keys("sync", n) {
		if err := e.sendSync(p, e.msg(k, "TagS")); err != nil {
			e.fail("SendSync %s: %v", k, err)
		}
	}
	var wg sync.WaitGroup
	var asyncMu sync.Mutex
	asyncOK := 0
	for _, k := range keys("async", n) {
		k := k
		wg.Add(1)
		err := p.SendAsync(e.ctx, func(_ context.Context, r *primitive.SendResult, err error) {
			defer wg.Done()
			if err != nil || r == nil || r.Status != primitive.SendOK {
				e.fail("SendAsync %s callback: %v %v", k, r, err)
				return
			}
			asyncMu.Lock()
			asyncOK++
			asyncMu.Unlock()
		}, e.msg(k, "TagA"))
		if err != nil {
			wg.Done()
			e.fail("SendAsync %s: %v", k, err)
		}
	}
	for _, k := range keys("oneway", n) {
		if err := bounded(e.ctx, func() error { return p.SendOneWay(e.ctx, e.msg(k, "TagO")) }); err != nil {
			e.fail("SendOneWay %s: %v", k, err)
		}
	}
	var batch []*primitive.Message
	for _, k := range keys("batch", n) {
		batch = append(batch, e.msg(k, "TagB"))
	}
	if err := e.sendSync(p, batch...); err != nil {
		e.fail("batch SendSync: %v", err)
	}
	_ = e.waitFor(func() bool { asyncMu.Lock(); defer asyncMu.Unlock(); return asyncOK == n })

	var want []string
	for _, pre := range []string{"sync", "async", "oneway", "batch"} {
		want = append(want, keys(pre, n)...)
	}
	e.waitFor(func() bool { return all(rec.counts(e.runID, ""), want) })
	e.hold(time.Second) // late duplicates
	got := rec.counts(e.runID, "")
	e.expectExactly("clustering consumer", got, want)
	per := map[string]int{}
	for k := range got {
		per[strings.SplitN(k, "-", 2)[0]]++
	}
	// tags survive each send path
	for _, d := range rec.snapshot() {
		want := map[string]string{"sync": "TagS", "async": "TagA", "oneway": "TagO", "batch": "TagB"}[strings.SplitN(d.key, "-", 2)[0]]
		if d.tag != want {
			e.fail("%s arrived with tag %q, want %q", d.key, d.tag, want)
			break
		}
	}
	return fmt.Sprintf("asyncCallbacksOK=%d sync=%d async=%d oneway=%d batch=%d", asyncOK, per["sync"], per["async"], per["oneway"], per["batch"])
}

// 2. Two clustering consumers of one group share the queues; then one stops.
func share(e *env) string {
	rec := &recorder{}
	g := e.group("share")
	stops := map[string]func(){}
	for _, who := range []string{"c1", "c2"} {
		stop, err := e.startConsumer(consumerSpec{who: who, group: g, model: consumer.Clustering,
			selector: consumer.MessageSelector{Type: consumer.TAG, Expression: "*"},
			cb:       rec.callback(who, consumer.ConsumeSuccess)})
		if err != nil {
			e.fail("%v", err)
			return "consumer failed"
		}
		stops[who] = stop
	}
	p, err := e.startProducer("share", producer.WithQueueSelector(queueIDSelector{}))
	if err != nil {
		e.fail("%v", err)
		return "producer failed"
	}
	// Probe rounds (one message per queue) until a round is split between both
	// consumers with each queue served by exactly one: rebalancing has settled.
	settled := false
	rounds := 0
	for r := 0; r < 60 && !settled && e.ctx.Err() == nil; r++ {
		rounds++
		var want []string
		for q := 0; q < queues; q++ {
			k := fmt.Sprintf("probe%d-%d", r, q)
			m := e.msg(k, "Probe")
			m.WithProperty(propQueue, strconv.Itoa(q))
			if err := e.sendSync(p, m); err != nil {
				e.fail("probe send: %v", err)
				return "probe failed"
			}
			want = append(want, k)
		}
		if !e.waitFor(func() bool { return all(rec.counts(e.runID, ""), want) }) {
			break
		}
		c1, c2 := rec.counts(e.runID, "c1"), rec.counts(e.runID, "c2")
		n1, n2, clean := 0, 0, true
		for _, k := range want {
			n1 += c1[k]
			n2 += c2[k]
			if c1[k]+c2[k] != 1 {
				clean = false
			}
		}
		settled = clean && n1 > 0 && n2 > 0
		if !settled {
			e.hold(500 * time.Millisecond)
		}
	}
	if !settled {
		e.fail("rebalance never split the %d queues between the two consumers (%d probe rounds)", queues, rounds)
		return fmt.Sprintf("rounds=%d settled=false", rounds)
	}
	phase1 := keys("one", e.count)
	for i, k := range phase1 {
		m := e.msg(k, "One")
		m.WithProperty(propQueue, strconv.Itoa(i%queues))
		if err := e.sendSync(p, m); err != nil {
			e.fail("send %s: %v", k, err)
		}
	}
	e.waitFor(func() bool { return all(rec.counts(e.runID, ""), phase1) })
	e.hold(time.Second)
	c1, c2 := rec.counts(e.runID, "c1"), rec.counts(e.runID, "c2")
	got1 := map[string]int{}
	n1, n2 := 0, 0
	for _, k := range phase1 {
		got1[k] = c1[k] + c2[k]
		n1 += c1[k]
		n2 += c2[k]
	}
	e.expectExactly("phase 1 (both consumers)", got1, phase1)
	if n1 == 0 || n2 == 0 {
		e.fail("phase 1: queues not shared: c1=%d c2=%d", n1, n2)
	}

	stops["c1"]()
	phase2 := keys("two", e.count)
	for i, k := range phase2 {
		m := e.msg(k, "Two")
		m.WithProperty(propQueue, strconv.Itoa(i%queues))
		if err := e.sendSync(p, m); err != nil {
			e.fail("send %s: %v", k, err)
		}
	}
	e.waitFor(func() bool { return all(rec.counts(e.runID, "c2"), phase2) })
	e.hold(time.Second)
	all2 := rec.counts(e.runID, "")
	c2 = rec.counts(e.runID, "c2")
	got2 := map[string]int{}
	for _, k := range phase2 {
		got2[k] = all2[k]
	}
	e.expectExactly("phase 2 (c1 stopped)", got2, phase2)
	m2 := 0
	for _, k := range phase2 {
		if c2[k] > 0 {
			m2++
		}
	}
	if m2 != len(phase2) {
		e.fail("phase 2: c2 got %d of %d after c1 stopped", m2, len(phase2))
	}
	return fmt.Sprintf("probeRounds=%d phase1C1=%d phase1C2=%d phase2C2=%d", rounds, n1, n2, m2)
}

// 3. Broadcasting: two consumers of one group each receive every message.
func broadcast(e *env) string {
	rec := &recorder{}
	g := e.group("bcast")
	for _, who := range []string{"b1", "b2"} {
		if _, err := e.startConsumer(consumerSpec{who: who, group: g, model: consumer.BroadCasting,
			selector: consumer.MessageSelector{Type: consumer.TAG, Expression: "*"},
			cb:       rec.callback(who, consumer.ConsumeSuccess)}); err != nil {
			e.fail("%v", err)
			return "consumer failed"
		}
	}
	p, err := e.startProducer("bcast")
	if err != nil {
		e.fail("%v", err)
		return "producer failed"
	}
	want := keys("b", e.count)
	for _, k := range want {
		if err := e.sendSync(p, e.msg(k, "B")); err != nil {
			e.fail("send %s: %v", k, err)
		}
	}
	e.waitFor(func() bool {
		return all(rec.counts(e.runID, "b1"), want) && all(rec.counts(e.runID, "b2"), want)
	})
	e.hold(time.Second)
	g1, g2 := rec.counts(e.runID, "b1"), rec.counts(e.runID, "b2")
	e.expectExactly("consumer b1", g1, want)
	e.expectExactly("consumer b2", g2, want)
	return fmt.Sprintf("b1=%d b2=%d", len(g1), len(g2))
}

// 4. Hash queue selector by sharding key over 8 queues, orderly consumer.
func orderly(e *env) string {
	rec := &recorder{}
	if _, err := e.startConsumer(consumerSpec{who: "o", group: e.group("order"), model: consumer.Clustering,
		orderly: true, selector: consumer.MessageSelector{Type: consumer.TAG, Expression: "*"},
		cb: rec.callback("o", consumer.ConsumeSuccess)}); err != nil {
		e.fail("%v", err)
		return "consumer failed"
	}
	p, err := e.startProducer("order", producer.WithQueueSelector(producer.NewHashQueueSelector()))
	if err != nil {
		e.fail("%v", err)
		return "producer failed"
	}
	const nkeys = 8
	per := e.count
	var want []string
	queueOf := map[string]map[int]bool{}
	var qmu sync.Mutex
	for i := 0; i < per; i++ {
		for k := 0; k < nkeys; k++ {
			sk := fmt.Sprintf("order%d", k)
			key := fmt.Sprintf("%s-%d", sk, i)
			m := e.msg(key, "O")
			m.WithShardingKey(sk)
			if err := e.sendSync(p, m); err != nil {
				e.fail("send %s: %v", key, err)
			}
			want = append(want, key)
		}
	}
	e.waitFor(func() bool { return all(rec.counts(e.runID, ""), want) })
	e.hold(time.Second)
	e.expectExactly("orderly consumer", rec.counts(e.runID, ""), want)
	next := map[string]int{}
	bad := 0
	for _, d := range rec.snapshot() {
		if !strings.HasSuffix(d.body, e.runID) {
			continue
		}
		parts := strings.SplitN(d.key, "-", 2)
		seq, _ := strconv.Atoi(parts[1])
		qmu.Lock()
		if queueOf[parts[0]] == nil {
			queueOf[parts[0]] = map[int]bool{}
		}
		queueOf[parts[0]][d.queueID] = true
		qmu.Unlock()
		if seq != next[parts[0]] {
			bad++
			if bad <= 10 {
				e.fail("key %s: got seq %d, expected %d", parts[0], seq, next[parts[0]])
			}
		}
		next[parts[0]] = seq + 1
	}
	used := map[int]bool{}
	for sk, qs := range queueOf {
		if len(qs) != 1 {
			e.fail("sharding key %s spread over %d queues", sk, len(qs))
		}
		for q := range qs {
			used[q] = true
		}
	}
	return fmt.Sprintf("keys=%d perKey=%d outOfOrder=%d queuesUsed=%d", nkeys, per, bad, len(used))
}

// 5. Tag filter "tagA || tagB".
func tagFilter(e *env) string {
	rec := &recorder{}
	if _, err := e.startConsumer(consumerSpec{who: "t", group: e.group("tag"), model: consumer.Clustering,
		selector: consumer.MessageSelector{Type: consumer.TAG, Expression: "tagA || tagB"},
		cb:       rec.callback("t", consumer.ConsumeSuccess)}); err != nil {
		e.fail("%v", err)
		return "consumer failed"
	}
	p, err := e.startProducer("tag", producer.WithQueueSelector(queueIDSelector{}))
	if err != nil {
		e.fail("%v", err)
		return "producer failed"
	}
	var want []string
	tags := []string{"tagA", "tagB", "tagC", "tagAB", ""}
	for i := 0; i < e.count; i++ {
		tag := tags[i%len(tags)]
		k := fmt.Sprintf("t%s-%d", tag, i)
		m := e.msg(k, tag)
		m.WithProperty(propQueue, strconv.Itoa(i%queues))
		if err := e.sendSync(p, m); err != nil {
			e.fail("send %s: %v", k, err)
		}
		if tag == "tagA" || tag == "tagB" {
			want = append(want, k)
		}
	}
	if !e.sendMarkers(p, "tagA", nil) {
		return "marker failed"
	}
	e.waitFor(func() bool { c := rec.counts(e.runID, ""); return all(c, want) && markersIn(c) == queues })
	got := rec.counts(e.runID, "")
	e.expectExactly("tag filter", got, want)
	for _, d := range rec.snapshot() {
		if d.tag != "tagA" && d.tag != "tagB" {
			e.fail("delivered tag %q (key %s)", d.tag, d.key)
		}
	}
	return fmt.Sprintf("matching=%d received=%d markers=%d", len(want), len(got)-markersIn(got), markersIn(got))
}

// 6. SQL92 property filter.
func sql92(e *env) string {
	rec := &recorder{}
	expr := "a BETWEEN 3 AND 6 AND (color = 'red' OR color IS NULL)"
	if _, err := e.startConsumer(consumerSpec{who: "s", group: e.group("sql"), model: consumer.Clustering,
		selector: consumer.MessageSelector{Type: consumer.SQL92, Expression: expr},
		cb:       rec.callback("s", consumer.ConsumeSuccess)}); err != nil {
		e.fail("%v", err)
		return "consumer failed"
	}
	p, err := e.startProducer("sql", producer.WithQueueSelector(queueIDSelector{}))
	if err != nil {
		e.fail("%v", err)
		return "producer failed"
	}
	var want []string
	colors := []string{"red", "blue", ""}
	for i := 0; i < e.count; i++ {
		a := i % 10
		color := colors[i%len(colors)]
		k := fmt.Sprintf("s%d%s-%d", a, color, i)
		m := e.msg(k, "S")
		m.WithProperty("a", strconv.Itoa(a))
		if color != "" {
			m.WithProperty("color", color)
		}
		m.WithProperty(propQueue, strconv.Itoa(i%queues))
		if err := e.sendSync(p, m); err != nil {
			e.fail("send %s: %v", k, err)
		}
		if a >= 3 && a <= 6 && color != "blue" {
			want = append(want, k)
		}
	}
	if !e.sendMarkers(p, "S", map[string]string{"a": "4", "color": "red"}) {
		return "marker failed"
	}
	e.waitFor(func() bool { c := rec.counts(e.runID, ""); return all(c, want) && markersIn(c) == queues })
	got := rec.counts(e.runID, "")
	e.expectExactly("sql92 filter", got, want)
	return fmt.Sprintf("expr=%q matching=%d received=%d markers=%d", expr, len(want), len(got)-markersIn(got), markersIn(got))
}

// 7. Transactions: commit, rollback, unknown (resolved by the broker's check).
type txListener struct {
	mu       sync.Mutex
	checks   map[string]int
	executed int
}

func (l *txListener) ExecuteLocalTransaction(m *primitive.Message) primitive.LocalTransactionState {
	l.mu.Lock()
	l.executed++
	l.mu.Unlock()
	switch {
	case strings.HasPrefix(m.GetKeys(), "commit-"):
		return primitive.CommitMessageState
	case strings.HasPrefix(m.GetKeys(), "rollback-"):
		return primitive.RollbackMessageState
	}
	// UNKNOW (3): spelled primitive.UnknowState up to v2.1.2 and renamed
	// later, so the value keeps one source for both module versions.
	return primitive.LocalTransactionState(3)
}

func (l *txListener) CheckLocalTransaction(m *primitive.MessageExt) primitive.LocalTransactionState {
	l.mu.Lock()
	l.checks[m.GetKeys()]++
	l.mu.Unlock()
	if strings.HasPrefix(m.GetKeys(), "unknown-") {
		return primitive.CommitMessageState
	}
	return primitive.RollbackMessageState
}

func transaction(e *env) string {
	rec := &recorder{}
	if _, err := e.startConsumer(consumerSpec{who: "x", group: e.group("tx"), model: consumer.Clustering,
		selector: consumer.MessageSelector{Type: consumer.TAG, Expression: "*"},
		cb:       rec.callback("x", consumer.ConsumeSuccess)}); err != nil {
		e.fail("%v", err)
		return "consumer failed"
	}
	l := &txListener{checks: map[string]int{}}
	tp, err := rocketmq.NewTransactionProducer(l,
		producer.WithNsResolver(primitive.NewPassthroughResolver(e.namesrv)),
		producer.WithGroupName("GID_go_tx_"+e.runID),
		producer.WithInstanceName("compat-go-tx-"+e.runID),
		producer.WithRetry(2))
	if err != nil {
		e.fail("create transaction producer: %v", err)
		return "producer failed"
	}
	if err := bounded(e.ctx, tp.Start); err != nil {
		e.fail("start transaction producer: %v", err)
		return "producer failed"
	}
	e.closers = append(e.closers, func() { shutdownBounded("transaction producer", tp.Shutdown, e) })
	n := e.count
	var sentStates []string
	for _, pre := range []string{"commit", "rollback", "unknown"} {
		for _, k := range keys(pre, n) {
			var res *primitive.TransactionSendResult
			err := bounded(e.ctx, func() error {
				var err error
				res, err = tp.SendMessageInTransaction(e.ctx, e.msg(k, "Tx"))
				return err
			})
			if err != nil || res == nil || res.SendResult == nil || res.Status != primitive.SendOK {
				e.fail("SendMessageInTransaction %s: %v %v", k, res, err)
				continue
			}
			if len(sentStates) < 3 && strings.HasSuffix(k, "-0") {
				sentStates = append(sentStates, fmt.Sprintf("%s:%d", pre, res.State))
			}
		}
	}
	p, err := e.startProducer("txmarker", producer.WithQueueSelector(queueIDSelector{}))
	if err != nil {
		e.fail("%v", err)
		return "producer failed"
	}
	if !e.sendMarkers(p, "Marker", nil) {
		return "marker failed"
	}
	want := append(keys("commit", n), keys("unknown", n)...)
	e.waitFor(func() bool { c := rec.counts(e.runID, ""); return all(c, want) && markersIn(c) == queues })
	e.hold(2 * time.Second) // rollbacks are end-transaction one-ways: give late ones a window
	got := rec.counts(e.runID, "")
	e.expectExactly("transactional messages", got, want)
	l.mu.Lock()
	unknownChecked, rollbackChecked, commitChecked := 0, 0, 0
	for k := range l.checks {
		switch strings.SplitN(k, "-", 2)[0] {
		case "unknown":
			unknownChecked++
		case "rollback":
			rollbackChecked++
		case "commit":
			commitChecked++
		}
	}
	executed := l.executed
	l.mu.Unlock()
	if unknownChecked != n {
		e.fail("check-back reached %d of %d unknown transactions", unknownChecked, n)
	}
	if rollbackChecked+commitChecked > 0 {
		e.fail("broker checked back already-resolved transactions: commit=%d rollback=%d", commitChecked, rollbackChecked)
	}
	return fmt.Sprintf("executed=%d unknownChecked=%d resolvedChecked=%d states=%s", executed, unknownChecked,
		rollbackChecked+commitChecked, strings.Join(sentStates, ","))
}

// 8. ConsumeRetryLater once: the message comes back with ReconsumeTimes 1.
func retry(e *env) string {
	rec := &recorder{}
	cb := func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		res := consumer.ConsumeSuccess
		for _, m := range msgs {
			rec.add("r", m)
			if m.ReconsumeTimes == 0 && strings.HasSuffix(string(m.Body), e.runID) {
				res = consumer.ConsumeRetryLater
			}
		}
		return res, nil
	}
	if _, err := e.startConsumer(consumerSpec{who: "r", group: e.group("retry"), model: consumer.Clustering,
		selector: consumer.MessageSelector{Type: consumer.TAG, Expression: "*"},
		extra:    []consumer.Option{consumer.WithMaxReconsumeTimes(1), consumer.WithConsumeMessageBatchMaxSize(1)},
		cb:       cb}); err != nil {
		e.fail("%v", err)
		return "consumer failed"
	}
	p, err := e.startProducer("retry")
	if err != nil {
		e.fail("%v", err)
		return "producer failed"
	}
	want := keys("r", e.count)
	for _, k := range want {
		if err := e.sendSync(p, e.msg(k, "R")); err != nil {
			e.fail("send %s: %v", k, err)
		}
	}
	e.waitFor(func() bool {
		c := rec.counts(e.runID, "")
		for _, k := range want {
			if c[k] < 2 {
				return false
			}
		}
		return true
	})
	e.hold(time.Second)
	first := map[string]delivery{}
	var minGap, maxGap time.Duration = -1, 0
	byTimes := map[int32]int{}
	for _, d := range rec.snapshot() {
		if !strings.HasSuffix(d.body, e.runID) {
			continue
		}
		byTimes[d.reconsumeTimes]++
		if d.reconsumeTimes == 0 {
			first[d.key] = d
			continue
		}
		if f, ok := first[d.key]; ok {
			gap := d.at.Sub(f.at)
			if minGap < 0 || gap < minGap {
				minGap = gap
			}
			if gap > maxGap {
				maxGap = gap
			}
		}
		if d.tag != "R" {
			e.fail("redelivered %s with tag %q", d.key, d.tag)
		}
	}
	if byTimes[0] != len(want) || byTimes[1] != len(want) || len(byTimes) != 2 {
		e.fail("deliveries by ReconsumeTimes: %v, want {0:%d 1:%d}", byTimes, len(want), len(want))
	}
	return fmt.Sprintf("first=%d redelivered=%d minGapMs=%d maxGapMs=%d", byTimes[0], byTimes[1],
		minGap.Milliseconds(), maxGap.Milliseconds())
}

// 9. Pull consumer: PullFrom reads exactly what was produced to one queue, at
// the offsets the sends reported, in batches and from a middle offset.
func pull(e *env) string {
	p, err := e.startProducer("pull", producer.WithQueueSelector(queueIDSelector{}))
	if err != nil {
		e.fail("%v", err)
		return "producer failed"
	}
	send := func(k string, q int) *primitive.SendResult {
		m := e.msg(k, "P")
		m.WithProperty(propQueue, strconv.Itoa(q))
		var res *primitive.SendResult
		err := bounded(e.ctx, func() error {
			var err error
			res, err = p.SendSync(e.ctx, m)
			return err
		})
		if err != nil || res == nil || res.Status != primitive.SendOK {
			e.fail("send %s: %v %v", k, res, err)
			return nil
		}
		return res
	}
	want := keys("p", e.count)
	var mq *primitive.MessageQueue
	for i, k := range want {
		res := send(k, 1)
		if res == nil {
			return "send failed"
		}
		if res.MessageQueue.QueueId != 1 || res.QueueOffset != int64(i) {
			e.fail("send %s went to queue %d offset %d, want queue 1 offset %d", k,
				res.MessageQueue.QueueId, res.QueueOffset, i)
		}
		mq = res.MessageQueue
	}
	other := keys("o", 3)
	for _, k := range other {
		if send(k, 2) == nil {
			return "send failed"
		}
	}

	c, err := rocketmq.NewPullConsumer(
		consumer.WithNsResolver(primitive.NewPassthroughResolver(e.namesrv)),
		consumer.WithGroupName(e.group("pull")),
		consumer.WithInstance("compat-go-pull-"+e.runID))
	if err != nil {
		e.fail("create pull consumer: %v", err)
		return "consumer failed"
	}
	if err := c.Subscribe(e.topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "*"}); err != nil {
		e.fail("subscribe: %v", err)
		return "consumer failed"
	}
	if err := bounded(e.ctx, c.Start); err != nil {
		e.fail("start pull consumer: %v", err)
		return "consumer failed"
	}
	e.closers = append(e.closers, func() { shutdownBounded("pull consumer", c.Shutdown, e) })

	// pullRange pulls queue q from offset until `n` messages (batches of at
	// most `batch`), checking each message's queue and offset.
	pullRange := func(q int, offset int64, n, batch int) ([]string, int64) {
		queue := &primitive.MessageQueue{Topic: mq.Topic, BrokerName: mq.BrokerName, QueueId: q}
		var got []string
		next := offset
		for tries := 0; len(got) < n && tries < n+10 && e.ctx.Err() == nil; tries++ {
			var res *primitive.PullResult
			err := bounded(e.ctx, func() error {
				var err error
				res, err = c.PullFrom(e.ctx, queue, next, batch)
				return err
			})
			if err != nil || res == nil {
				e.fail("pull queue %d at %d: %v", q, next, err)
				return got, next
			}
			if res.Status != primitive.PullFound {
				e.fail("pull queue %d at %d: status %v", q, next, res.Status)
				return got, next
			}
			msgs := res.GetMessageExts()
			if len(msgs) == 0 || len(msgs) > batch {
				e.fail("pull queue %d at %d: %d messages for a batch of %d", q, next, len(msgs), batch)
				return got, next
			}
			for _, m := range msgs {
				if m.Queue == nil || m.Queue.QueueId != q || m.QueueOffset != next {
					e.fail("pull queue %d: message %s at queue %v offset %d, want offset %d",
						q, m.GetKeys(), m.Queue, m.QueueOffset, next)
				}
				got = append(got, m.GetKeys())
				next++
			}
			if res.NextBeginOffset != next {
				e.fail("pull queue %d: nextBeginOffset %d, want %d", q, res.NextBeginOffset, next)
				next = res.NextBeginOffset
			}
		}
		return got, next
	}
	same := func(label string, got, want []string) {
		if strings.Join(got, ",") != strings.Join(want, ",") {
			e.fail("%s: got %v, want %v", label, got, want)
		}
	}

	all1, end := pullRange(1, 0, e.count, 7)
	same("queue 1 from 0", all1, want)
	mid, _ := pullRange(1, 5, 3, 3)
	same("queue 1 from 5", mid, want[5:8])
	got2, _ := pullRange(2, 0, len(other), 32)
	same("queue 2 from 0", got2, other)
	return fmt.Sprintf("pulled=%d nextOffset=%d fromMiddle=%d otherQueue=%d", len(all1), end, len(mid), len(got2))
}

// 10. Admin API: CreateTopic, the route through the name server, the topic
// list, DeleteTopic, gone from the list and from the name server's routes.
func adminTopics(e *env) string {
	topic := e.topic + "_adm"
	newAdmin := func() (admin.Admin, error) {
		return admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver(e.namesrv)))
	}
	adm, err := newAdmin()
	if err != nil {
		e.fail("new admin: %v", err)
		return "admin failed"
	}
	defer shutdownBounded("admin", adm.Close, e)
	listed := func() bool {
		var l *admin.TopicList
		_ = bounded(e.ctx, func() error {
			var err error
			l, err = adm.FetchAllTopicList(e.ctx)
			return err
		})
		if l == nil {
			return false
		}
		for _, t := range l.TopicList {
			if t == topic {
				return true
			}
		}
		return false
	}
	err = bounded(e.ctx, func() error {
		return adm.CreateTopic(e.ctx, admin.WithTopicCreate(topic), admin.WithBrokerAddrCreate(e.broker),
			admin.WithReadQueueNums(3), admin.WithWriteQueueNums(3))
	})
	if err != nil {
		e.fail("create topic: %v", err)
		return "create failed"
	}
	queuesSeen := 0
	e.waitFor(func() bool {
		var mqs []*primitive.MessageQueue
		_ = bounded(e.ctx, func() error {
			var err error
			mqs, err = adm.FetchPublishMessageQueues(e.ctx, topic)
			return err
		})
		queuesSeen = len(mqs)
		return queuesSeen == 3
	})
	if queuesSeen != 3 {
		e.fail("route of %s: %d queue(s), want 3", topic, queuesSeen)
	}
	listedAfterCreate := e.waitFor(listed)
	if !listedAfterCreate {
		e.fail("%s not in FetchAllTopicList after CreateTopic", topic)
	}
	err = bounded(e.ctx, func() error {
		return adm.DeleteTopic(e.ctx, admin.WithTopicDelete(topic), admin.WithBrokerAddrDelete(e.broker),
			admin.WithNameSrvAddr(e.namesrv))
	})
	if err != nil {
		e.fail("delete topic: %v", err)
	}
	goneFromList := e.waitFor(func() bool { return !listed() })
	if !goneFromList {
		e.fail("%s still in FetchAllTopicList after DeleteTopic", topic)
	}
	// A fresh admin has no cached route: the name server must not know it.
	adm2, err := newAdmin()
	if err != nil {
		e.fail("new admin: %v", err)
		return "admin failed"
	}
	defer shutdownBounded("admin 2", adm2.Close, e)
	var routeErr error
	_ = bounded(e.ctx, func() error {
		_, routeErr = adm2.FetchPublishMessageQueues(e.ctx, topic)
		return nil
	})
	if routeErr == nil {
		e.fail("route of %s still served after DeleteTopic", topic)
	}
	return fmt.Sprintf("queues=%d listed=%t gone=%t routeGone=%t", queuesSeen, listedAfterCreate,
		goneFromList, routeErr != nil)
}
