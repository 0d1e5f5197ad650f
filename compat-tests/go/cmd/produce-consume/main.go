// Command produce-consume is the first scenario of the Go compat driver: a
// clustering push consumer (tags "*", consume from first offset) is started,
// then a producer sends -count messages with SendSync, and the program checks
// that every message arrives exactly once with the expected key, tag and body.
//
// It talks to a name server given by -namesrv and therefore works against
// our servers (mqnamesrv 9876 / mqbroker 10911) and the Java reference
// cluster (19876 / 20911) alike.
//
// Output: one summary line
//
//	sent=N received=N duplicates=0 missing=0
//
// preceded by "info:" lines and followed by "FAIL:" detail lines on failure.
// Exit status 0 on success, 1 otherwise (usage errors included).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
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
	msgTag    = "TagA"
	warmupTag = "Warmup"
	// maxDetail bounds how many items of each failure kind are printed.
	maxDetail = 20
	// shutdownBudget bounds each client shutdown so a stuck client cannot hang the run.
	shutdownBudget = 5 * time.Second
	// pollEvery is the polling interval for route readiness and message arrival.
	pollEvery = 100 * time.Millisecond
)

type config struct {
	namesrv       []string
	topic         string
	count         int
	group         string
	producerGroup string
	timeout       time.Duration
	settle        time.Duration
	brokerAddrs   []string
	queues        int
	logLevel      string
	clientLog     string
	delayLevel    int
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "produce-consume: %v\n", err)
		return 1
	}
	rlog.SetLogLevel(cfg.logLevel)
	clog, err := setupClientLog(cfg.clientLog)
	if err != nil {
		fmt.Fprintf(os.Stderr, "produce-consume: %v\n", err)
		return 1
	}
	defer clog.cleanup()

	runID := newRunID()
	if cfg.group == "" {
		cfg.group = "GID_compat_go_c_" + runID
	}
	if cfg.producerGroup == "" {
		cfg.producerGroup = "GID_compat_go_p_" + runID
	}

	start := time.Now()
	deadline := start.Add(cfg.timeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	st := newState(cfg, runID)

	// Last resort: whatever a client does, the process ends shortly after the deadline.
	watchdog := time.AfterFunc(cfg.timeout+4*shutdownBudget, func() {
		st.fail("watchdog: run did not finish within timeout %s plus shutdown budget; exiting", cfg.timeout)
		st.report()
		clog.dump()
		clog.cleanup()
		os.Exit(1)
	})
	defer watchdog.Stop()

	fmt.Printf("info: run=%s namesrv=%s topic=%s count=%d group=%s producerGroup=%s timeout=%s\n",
		runID, strings.Join(cfg.namesrv, ";"), cfg.topic, cfg.count, cfg.group, cfg.producerGroup, cfg.timeout)

	ok := st.execute(ctx, start)
	watchdog.Stop()
	st.report()
	if ok {
		return 0
	}
	clog.dump()
	return 1
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("produce-consume", flag.ContinueOnError)
	namesrv := fs.String("namesrv", "127.0.0.1:9876", "name server address(es), separated by ';' or ','")
	topic := fs.String("topic", "", "topic to use (required); created if it does not exist")
	count := fs.Int("count", 1000, "number of messages to send")
	group := fs.String("group", "", "consumer group (default: unique per run)")
	pgroup := fs.String("producer-group", "", "producer group (default: unique per run)")
	timeout := fs.Duration("timeout", 120*time.Second, "overall deadline for topic setup, sending and receiving")
	settle := fs.Duration("settle", time.Second, "after all messages arrived, keep listening this long to catch late duplicates")
	brokers := fs.String("broker-addr", "", "if the topic does not exist: create it with the admin API (code 17) on these broker addresses (';' or ','); "+
		"when empty, a warm-up message is sent instead so the broker auto-creates it from TBW102")
	queues := fs.Int("queues", 8, "read/write queue count when creating the topic with -broker-addr")
	delayLevel := fs.Int("delay-level", 0, "delay level for every message (0 = none); the summary then adds the smallest and largest receive-minus-born time")
	defLevel := os.Getenv("ROCKETMQ_GO_LOG_LEVEL")
	if defLevel == "" {
		defLevel = "warn"
	}
	logLevel := fs.String("log-level", defLevel, "client (rlog) log level: debug, info, warn, error")
	clientLog := fs.String("client-log", "", "file for the client's own log (kept); '-' = stderr; "+
		"default: a temporary file whose last lines are printed to stderr only when the run fails")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	cfg := &config{
		namesrv:       splitList(*namesrv),
		topic:         *topic,
		count:         *count,
		group:         *group,
		producerGroup: *pgroup,
		timeout:       *timeout,
		settle:        *settle,
		brokerAddrs:   splitList(*brokers),
		queues:        *queues,
		logLevel:      *logLevel,
		clientLog:     *clientLog,
		delayLevel:    *delayLevel,
	}
	switch {
	case len(cfg.namesrv) == 0:
		return nil, errors.New("-namesrv is empty")
	case cfg.topic == "":
		return nil, errors.New("-topic is required")
	case cfg.count <= 0:
		return nil, errors.New("-count must be positive")
	case cfg.timeout <= 0:
		return nil, errors.New("-timeout must be positive")
	case cfg.settle < 0:
		return nil, errors.New("-settle must not be negative")
	case cfg.queues <= 0:
		return nil, errors.New("-queues must be positive")
	}
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func newRunID() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return hex.EncodeToString(b)
}

func key(i int) string             { return "k-" + strconv.Itoa(i) }
func (s *state) body(i int) string { return fmt.Sprintf("body-%d-%s", i, s.runID) }

// sent is what SendSync returned for message i.
type sent struct {
	msgID       string
	offsetMsgID string
	queue       string
}

// delivery is one message handed to the consume callback.
type delivery struct {
	topic, key, tag, body string
	msgID, offsetMsgID    string
	queue                 string
	queueOffset           int64
	reconsumeTimes        int32
}

type state struct {
	cfg   *config
	runID string

	mu         sync.Mutex
	deliveries []delivery
	goodKeys   map[int]int // i -> deliveries with matching key and body (live view)
	warmups    int
	failures   []string

	sends     []*sent // index i; nil when the send failed
	sentOK    int
	sendsDone bool

	// filled in by analyse()
	received, duplicates, missing int

	// receive time minus born time of matching deliveries, ms (-1: none yet)
	minDelayMs, maxDelayMs int64
}

func newState(cfg *config, runID string) *state {
	return &state{
		cfg:        cfg,
		runID:      runID,
		goodKeys:   make(map[int]int, cfg.count),
		sends:      make([]*sent, cfg.count),
		minDelayMs: -1,
		maxDelayMs: -1,
	}
}

func (s *state) fail(format string, a ...interface{}) {
	s.mu.Lock()
	s.failures = append(s.failures, fmt.Sprintf(format, a...))
	s.mu.Unlock()
}

// execute runs the scenario; it returns true on success.
func (s *state) execute(ctx context.Context, start time.Time) bool {
	cfg := s.cfg

	if err := checkNamesrvReachable(cfg.namesrv); err != nil {
		s.fail("%v", err)
		s.missing = cfg.count
		return false
	}

	if err := s.ensureTopic(ctx); err != nil {
		s.fail("topic setup: %v", err)
		s.missing = cfg.count
		return false
	}
	tTopic := time.Since(start)

	// 1. consumer first.
	c, err := rocketmq.NewPushConsumer(
		consumer.WithNsResolver(primitive.NewPassthroughResolver(cfg.namesrv)),
		consumer.WithGroupName(cfg.group),
		consumer.WithInstance("compat-go-c-"+s.runID),
		consumer.WithConsumerModel(consumer.Clustering),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	)
	if err != nil {
		s.fail("create push consumer: %v", err)
		s.missing = cfg.count
		return false
	}
	err = c.Subscribe(cfg.topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "*"}, s.onMessages)
	if err != nil {
		s.fail("subscribe %s: %v", cfg.topic, err)
		shutdown("consumer", c.Shutdown, s)
		s.missing = cfg.count
		return false
	}
	if err := boundedErr(ctx, c.Start); err != nil {
		s.fail("start push consumer: %v", err)
		shutdown("consumer", c.Shutdown, s)
		s.missing = cfg.count
		return false
	}
	defer shutdown("consumer", c.Shutdown, s)

	// 2. then the producer.
	p, err := rocketmq.NewProducer(
		producer.WithNsResolver(primitive.NewPassthroughResolver(cfg.namesrv)),
		producer.WithGroupName(cfg.producerGroup),
		producer.WithInstanceName("compat-go-p-"+s.runID),
		producer.WithRetry(2),
	)
	if err != nil {
		s.fail("create producer: %v", err)
		s.missing = cfg.count
		return false
	}
	if err := boundedErr(ctx, p.Start); err != nil {
		s.fail("start producer: %v", err)
		shutdown("producer", p.Shutdown, s)
		s.missing = cfg.count
		return false
	}
	producerDown := false
	defer func() {
		if !producerDown {
			shutdown("producer", p.Shutdown, s)
		}
	}()

	tSendStart := time.Now()
	s.sendAll(ctx, p)
	tSend := time.Since(tSendStart)
	shutdown("producer", p.Shutdown, s)
	producerDown = true

	// 3. poll until everything arrived or the deadline passed.
	allIn := s.waitAll(ctx)
	tRecv := time.Since(start)
	if allIn && cfg.settle > 0 {
		// Keep listening a little to catch late duplicates (never past the deadline).
		settle := time.NewTimer(cfg.settle)
		select {
		case <-settle.C:
		case <-ctx.Done():
			settle.Stop()
		}
	}

	s.analyse()
	fmt.Printf("info: topic-ready=%s send=%s (%.0f msg/s) all-received-after=%s warmup-deliveries=%d\n",
		tTopic.Round(time.Millisecond), tSend.Round(time.Millisecond),
		float64(s.sentOK)/tSend.Seconds(), tRecv.Round(time.Millisecond), s.warmups)
	return len(s.failures) == 0 && s.sentOK == cfg.count && s.missing == 0 && s.duplicates == 0
}

// checkNamesrvReachable fails fast (and clearly) when no name server listens.
func checkNamesrvReachable(addrs []string) error {
	var errs []string
	for _, a := range addrs {
		conn, err := net.DialTimeout("tcp", a, 3*time.Second)
		if err == nil {
			_ = conn.Close()
			return nil
		}
		errs = append(errs, err.Error())
	}
	return fmt.Errorf("no name server reachable at %s: %s", strings.Join(addrs, ";"), strings.Join(errs, "; "))
}

// ensureTopic makes sure the name server has a route for the topic before the
// consumer starts (the Go push consumer refuses to start without one).
func (s *state) ensureTopic(ctx context.Context) error {
	cfg := s.cfg
	adm, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver(cfg.namesrv)))
	if err != nil {
		return fmt.Errorf("create admin: %w", err)
	}
	var a admin.Admin = adm
	defer shutdown("admin", a.Close, s)

	if mqs, err := bounded(ctx, func() ([]*primitive.MessageQueue, error) { return a.FetchPublishMessageQueues(ctx, cfg.topic) }); err == nil && len(mqs) > 0 {
		fmt.Printf("info: topic %s exists with %d writable queue(s)\n", cfg.topic, len(mqs))
		return nil
	}

	if len(cfg.brokerAddrs) > 0 {
		for _, b := range cfg.brokerAddrs {
			err := boundedErr(ctx, func() error {
				return a.CreateTopic(ctx,
					admin.WithTopicCreate(cfg.topic),
					admin.WithBrokerAddrCreate(b),
					admin.WithReadQueueNums(cfg.queues),
					admin.WithWriteQueueNums(cfg.queues),
				)
			})
			if err != nil {
				return fmt.Errorf("create topic %s on broker %s: %w", cfg.topic, b, err)
			}
		}
		fmt.Printf("info: topic %s created via admin on %s\n", cfg.topic, strings.Join(cfg.brokerAddrs, ";"))
	} else {
		if err := s.warmup(ctx); err != nil {
			return err
		}
		fmt.Printf("info: topic %s auto-created by a warm-up send\n", cfg.topic)
	}

	var lastErr error
	for {
		mqs, err := bounded(ctx, func() ([]*primitive.MessageQueue, error) { return a.FetchPublishMessageQueues(ctx, cfg.topic) })
		if err == nil && len(mqs) > 0 {
			fmt.Printf("info: topic %s routable with %d writable queue(s)\n", cfg.topic, len(mqs))
			return nil
		}
		switch {
		case err == nil:
			lastErr = errors.New("route has no writable queue")
		case ctx.Err() == nil || lastErr == nil:
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no route for topic %s before the deadline (last error: %v)", cfg.topic, lastErr)
		case <-time.After(5 * pollEvery):
		}
	}
}

// warmup sends one message with a throw-away producer so that a broker with
// autoCreateTopicEnable=true creates the topic from TBW102.
func (s *state) warmup(ctx context.Context) error {
	cfg := s.cfg
	p, err := rocketmq.NewProducer(
		producer.WithNsResolver(primitive.NewPassthroughResolver(cfg.namesrv)),
		producer.WithGroupName(cfg.producerGroup+"_warmup"),
		producer.WithInstanceName("compat-go-w-"+s.runID),
	)
	if err != nil {
		return fmt.Errorf("create warm-up producer: %w", err)
	}
	if err := boundedErr(ctx, p.Start); err != nil {
		shutdown("warm-up producer", p.Shutdown, s)
		return fmt.Errorf("start warm-up producer: %w", err)
	}
	defer shutdown("warm-up producer", p.Shutdown, s)

	msg := primitive.NewMessage(cfg.topic, []byte("warmup-"+s.runID))
	msg.WithTag(warmupTag)
	msg.WithKeys([]string{"warmup-" + s.runID})
	var lastErr error
	for {
		res, err := bounded(ctx, func() (*primitive.SendResult, error) { return p.SendSync(ctx, msg) })
		if err == nil && res.Status == primitive.SendOK {
			return nil
		}
		switch {
		case err == nil:
			lastErr = fmt.Errorf("status %d", res.Status)
		case ctx.Err() == nil || lastErr == nil:
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("warm-up send to auto-create topic %s failed (does the broker have autoCreateTopicEnable=true? else pass -broker-addr): %v", cfg.topic, lastErr)
		case <-time.After(5 * pollEvery):
		}
	}
}

func (s *state) sendAll(ctx context.Context, p rocketmq.Producer) {
	cfg := s.cfg
	consecutive := 0
	sendFailures := 0
	for i := 0; i < cfg.count; i++ {
		if ctx.Err() != nil {
			s.fail("deadline reached while sending: %d of %d messages not sent", cfg.count-i, cfg.count)
			break
		}
		msg := primitive.NewMessage(cfg.topic, []byte(s.body(i)))
		msg.WithTag(msgTag)
		msg.WithKeys([]string{key(i)})
		if cfg.delayLevel > 0 {
			msg.WithDelayTimeLevel(cfg.delayLevel)
		}
		res, err := bounded(ctx, func() (*primitive.SendResult, error) { return p.SendSync(ctx, msg) })
		var problem string
		switch {
		case err != nil:
			problem = err.Error()
		case res == nil:
			problem = "nil result"
		case res.Status != primitive.SendOK:
			problem = fmt.Sprintf("status %d (want SendOK): %s", res.Status, res.String())
		case res.MsgID == "" || res.OffsetMsgID == "":
			problem = fmt.Sprintf("empty MsgID or OffsetMsgID: %s", res.String())
		}
		if problem != "" {
			sendFailures++
			consecutive++
			if sendFailures <= maxDetail {
				s.fail("send %s: %s", key(i), problem)
			}
			if consecutive >= 20 {
				s.fail("giving up after 20 consecutive send failures (%d of %d not attempted)", cfg.count-i-1, cfg.count)
				break
			}
			continue
		}
		consecutive = 0
		q := ""
		if res.MessageQueue != nil {
			q = fmt.Sprintf("%s:%d", res.MessageQueue.BrokerName, res.MessageQueue.QueueId)
		}
		s.mu.Lock()
		s.sends[i] = &sent{msgID: res.MsgID, offsetMsgID: res.OffsetMsgID, queue: q}
		s.sentOK++
		s.mu.Unlock()
	}
	if sendFailures > maxDetail {
		s.fail("... %d send failures in total", sendFailures)
	}
	s.mu.Lock()
	s.sendsDone = true
	s.mu.Unlock()
}

// onMessages is the push consumer callback.
func (s *state) onMessages(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nowMs := time.Now().UnixNano() / int64(time.Millisecond)
	for _, m := range msgs {
		d := delivery{
			topic:          m.Topic,
			key:            m.GetKeys(),
			tag:            m.GetTags(),
			body:           string(m.Body),
			msgID:          m.MsgId,
			offsetMsgID:    m.OffsetMsgId,
			queueOffset:    m.QueueOffset,
			reconsumeTimes: m.ReconsumeTimes,
		}
		if m.Queue != nil {
			d.queue = fmt.Sprintf("%s:%d", m.Queue.BrokerName, m.Queue.QueueId)
		}
		s.deliveries = append(s.deliveries, d)
		if i, ok := s.index(d.key); ok && d.body == s.body(i) {
			s.goodKeys[i]++
			lat := nowMs - m.BornTimestamp
			if s.minDelayMs < 0 || lat < s.minDelayMs {
				s.minDelayMs = lat
			}
			if lat > s.maxDelayMs {
				s.maxDelayMs = lat
			}
		}
	}
	return consumer.ConsumeSuccess, nil
}

// index parses "k-<i>" with 0 <= i < count.
func (s *state) index(k string) (int, bool) {
	if !strings.HasPrefix(k, "k-") {
		return 0, false
	}
	i, err := strconv.Atoi(k[2:])
	if err != nil || i < 0 || i >= s.cfg.count {
		return 0, false
	}
	return i, true
}

// waitAll polls until every successfully sent message was received once, or the deadline.
func (s *state) waitAll(ctx context.Context) bool {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		s.mu.Lock()
		done := s.sendsDone
		complete := true
		for i := 0; i < s.cfg.count && complete; i++ {
			if s.sends[i] != nil && s.goodKeys[i] == 0 {
				complete = false
			}
		}
		s.mu.Unlock()
		if done && complete {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// analyse computes the final counts and failure details from all deliveries.
func (s *state) analyse() {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.cfg
	sentByID := make(map[string]int, cfg.count)
	for i, sd := range s.sends {
		if sd != nil {
			sentByID[sd.msgID] = i
		}
	}
	perKey := make([]int, cfg.count)
	var bad []string
	foreign := 0
	suffix := "-" + s.runID
	for _, d := range s.deliveries {
		if d.tag == warmupTag && d.key == "warmup-"+s.runID {
			s.warmups++
			continue
		}
		i, byID := sentByID[d.msgID]
		if !byID {
			if !strings.HasSuffix(d.body, suffix) {
				foreign++ // left over from another run on the same topic
				continue
			}
			var ok bool
			if i, ok = s.index(d.key); !ok {
				bad = append(bad, fmt.Sprintf("message of this run with unexpected key %q (msgId %s, body %q)", d.key, d.msgID, trunc(d.body)))
				continue
			}
			if s.sends[i] != nil {
				bad = append(bad, fmt.Sprintf("%s: consumed MsgId %s differs from SendResult.MsgID %s", d.key, d.msgID, s.sends[i].msgID))
			}
		}
		want := key(i)
		var probs []string
		if d.key != want {
			probs = append(probs, fmt.Sprintf("key %q want %q", d.key, want))
		}
		if d.body != s.body(i) {
			probs = append(probs, fmt.Sprintf("body %q want %q", trunc(d.body), s.body(i)))
		}
		if d.tag != msgTag {
			probs = append(probs, fmt.Sprintf("tag %q want %q", d.tag, msgTag))
		}
		if d.topic != cfg.topic {
			probs = append(probs, fmt.Sprintf("topic %q want %q", d.topic, cfg.topic))
		}
		// A delayed message is stored again when due: new offset id, same MsgId.
		if sd := s.sends[i]; sd != nil && cfg.delayLevel == 0 && d.offsetMsgID != sd.offsetMsgID {
			probs = append(probs, fmt.Sprintf("consumed OffsetMsgId %s differs from SendResult.OffsetMsgID %s", d.offsetMsgID, sd.offsetMsgID))
		}
		if len(probs) > 0 {
			bad = append(bad, fmt.Sprintf("%s (queue %s offset %d): %s", want, d.queue, d.queueOffset, strings.Join(probs, "; ")))
			continue
		}
		perKey[i]++
	}

	var missingKeys, dupKeys []string
	for i, n := range perKey {
		switch {
		case n == 0:
			s.missing++
			missingKeys = append(missingKeys, key(i))
		default:
			s.received++
			if n > 1 {
				s.duplicates += n - 1
				dupKeys = append(dupKeys, fmt.Sprintf("%s x%d", key(i), n))
			}
		}
	}
	if foreign > 0 {
		fmt.Printf("info: ignored %d message(s) from other runs on topic %s\n", foreign, cfg.topic)
	}
	if len(bad) > 0 {
		s.failures = append(s.failures, limited("wrong message", bad)...)
	}
	if len(missingKeys) > 0 {
		s.failures = append(s.failures, fmt.Sprintf("missing %d key(s): %s", len(missingKeys), joinLimited(missingKeys)))
	}
	if len(dupKeys) > 0 {
		s.failures = append(s.failures, fmt.Sprintf("duplicated %d key(s): %s", len(dupKeys), joinLimited(dupKeys)))
	}
	if s.sentOK != cfg.count {
		s.failures = append(s.failures, fmt.Sprintf("only %d of %d sends returned SendOK with MsgID and OffsetMsgID", s.sentOK, cfg.count))
	}
}

// report prints the summary line and, on failure, the details.
func (s *state) report() {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Printf("sent=%d received=%d duplicates=%d missing=%d\n", s.sentOK, s.received, s.duplicates, s.missing)
	if s.cfg.delayLevel > 0 {
		fmt.Printf("delayLevel=%d minDelayMs=%d maxDelayMs=%d\n", s.cfg.delayLevel, s.minDelayMs, s.maxDelayMs)
	}
	for _, f := range s.failures {
		fmt.Printf("FAIL: %s\n", f)
	}
}

// bounded runs a blocking client call but returns at ctx's deadline even when
// the client is still stuck inside it (the process exits soon after anyway).
func bounded[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("deadline reached while waiting for the client: %w", ctx.Err())
	}
}

func boundedErr(ctx context.Context, f func() error) error {
	_, err := bounded(ctx, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

func shutdown(name string, f func() error, s *state) {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			s.fail("%s shutdown: %v", name, err)
		}
	case <-time.After(shutdownBudget):
		s.fail("%s shutdown did not return within %s", name, shutdownBudget)
	}
}

func limited(what string, items []string) []string {
	var out []string
	for i, it := range items {
		if i == maxDetail {
			out = append(out, fmt.Sprintf("... %d %s(s) in total", len(items), what))
			break
		}
		out = append(out, what+": "+it)
	}
	return out
}

func joinLimited(items []string) string {
	if len(items) > maxDetail {
		return strings.Join(items[:maxDetail], ", ") + fmt.Sprintf(", ... (%d more)", len(items)-maxDetail)
	}
	return strings.Join(items, ", ")
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// clientLog routes the client's rlog output away from the terminal so that CI
// output stays readable, and shows its tail when the run fails.
type clientLog struct {
	path    string // file to show on failure ("" = nothing to show)
	tempDir string // removed by cleanup
}

func setupClientLog(flagValue string) (*clientLog, error) {
	switch flagValue {
	case "-":
		return &clientLog{}, nil // leave rlog on stderr
	case "":
		dir, err := os.MkdirTemp("", "produce-consume-log-")
		if err != nil {
			return nil, fmt.Errorf("client log: %w", err)
		}
		path := filepath.Join(dir, "client.log")
		if err := rlog.SetOutputPath(path); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("client log: %w", err)
		}
		return &clientLog{path: path, tempDir: dir}, nil
	default:
		if err := rlog.SetOutputPath(flagValue); err != nil {
			return nil, fmt.Errorf("client log %s: %w", flagValue, err)
		}
		return &clientLog{}, nil
	}
}

// dump prints the last lines of a temporary client log to stderr.
func (c *clientLog) dump() {
	if c.path == "" {
		return
	}
	data, err := os.ReadFile(c.path)
	if err != nil || len(data) == 0 {
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	const keep = 60
	from := 0
	if len(lines) > keep {
		from = len(lines) - keep
	}
	fmt.Fprintf(os.Stderr, "---- last %d of %d client log line(s) ----\n", len(lines)-from, len(lines))
	for _, l := range lines[from:] {
		fmt.Fprintln(os.Stderr, l)
	}
	fmt.Fprintln(os.Stderr, "---- end of client log ----")
}

func (c *clientLog) cleanup() {
	if c.tempDir != "" {
		_ = os.RemoveAll(c.tempDir)
	}
}
