// Command scenarios drives the official RocketMQ 5 gRPC Go client
// (github.com/apache/rocketmq-clients/golang/v5) against one gRPC endpoint
// (a Java proxy or our broker's gRPC port) and prints what happened as
// machine-readable lines for compat-tests/tests/grpc_go_node_clients.rs:
//
//	SENT <key> <messageId> <detail>     a send the server acknowledged
//	GOT <key> <messageId> <attempt> <ms> <detail>
//	                                     a received message; <ms> is the receive
//	                                     time in Unix milliseconds
//	ACKED <key>                          an ack the server accepted
//	CHANGED <key> <ms>                   ChangeInvisibleDuration accepted at <ms>
//	CHECK <key> <resolution>             the transaction checker was asked
//	WARN <text>                          a failed receive or ack (retried)
//	DONE <scenario>                      the scenario ran to its end
//
// Usage: scenarios <scenario> <endpoint> <topic> <consumerGroup> <runId>
// with <scenario> one of normal, fifo, delay, transaction. The topic must
// exist with the matching message type; the consumer group may be created
// by the server. Exits 1 on a fatal error (after printing FATAL <text>).
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/credentials"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The minimum invisible duration a Java proxy accepts for a receive.
const receiveInvisible = 10 * time.Second

// The long-polling time of a receive. The client sends no polling timeout,
// so the server polls for the request's deadline (await + 3 s) less a
// reserve; a Java proxy refuses polls under 5 s.
const await = 5 * time.Second

var out sync.Mutex

// lastWarn: the previous WARN line, so that a repeated failure prints once.
var lastWarn string

func emit(format string, args ...interface{}) {
	out.Lock()
	defer out.Unlock()
	fmt.Printf(format+"\n", args...)
}

func fatal(format string, args ...interface{}) {
	emit("FATAL "+format, args...)
	os.Exit(1)
}

func nowMs() int64 { return time.Now().UnixNano() / int64(time.Millisecond) }

type run struct {
	endpoint, topic, group, id string
}

func (r *run) config(group string) *rmq.Config {
	return &rmq.Config{
		Endpoint:      r.endpoint,
		ConsumerGroup: group,
		// No access control on the servers under test; the client insists
		// on credentials.
		Credentials: &credentials.SessionCredentials{AccessKey: "compat", AccessSecret: "compat"},
	}
}

func (r *run) producer(checker *rmq.TransactionChecker) rmq.Producer {
	opts := []rmq.ProducerOption{rmq.WithTopics(r.topic)}
	if checker != nil {
		opts = append(opts, rmq.WithTransactionChecker(checker))
	}
	p, err := rmq.NewProducer(r.config(""), opts...)
	if err != nil {
		fatal("new producer: %v", err)
	}
	if err := p.Start(); err != nil {
		fatal("start producer: %v", err)
	}
	return p
}

func (r *run) consumer(await time.Duration) rmq.SimpleConsumer {
	c, err := rmq.NewSimpleConsumer(r.config(r.group),
		rmq.WithAwaitDuration(await),
		rmq.WithSubscriptionExpressions(map[string]*rmq.FilterExpression{r.topic: rmq.SUB_ALL}),
	)
	if err != nil {
		fatal("new simple consumer: %v", err)
	}
	if err := c.Start(); err != nil {
		fatal("start simple consumer: %v", err)
	}
	return c
}

func (r *run) message(key string) *rmq.Message {
	m := &rmq.Message{Topic: r.topic, Body: []byte("body of " + key)}
	m.SetKeys(key)
	m.SetTag("compat")
	return m
}

func send(p rmq.Producer, m *rmq.Message, detail string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	receipts, err := p.Send(ctx, m)
	if err != nil || len(receipts) == 0 {
		fatal("send %s: %v", m.GetKeys(), err)
	}
	emit("SENT %s %s %s", m.GetKeys()[0], receipts[0].MessageID, detail)
}

// mine: whether a message is one of this run's (keys start with the run id).
func (r *run) mine(mv *rmq.MessageView) bool {
	return strings.HasPrefix(keyOf(mv), r.id+"-")
}

func keyOf(mv *rmq.MessageView) string {
	if k := mv.GetKeys(); len(k) > 0 {
		return k[0]
	}
	return "-"
}

// receive does one Receive; a failure (e.g. no message within the await
// duration) is reported as WARN and gives no messages.
func receive(c rmq.SimpleConsumer, invisible time.Duration) []*rmq.MessageView {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mvs, err := c.Receive(ctx, 16, invisible)
	if err != nil {
		if !strings.Contains(err.Error(), "MESSAGE_NOT_FOUND") {
			// e.g. the first receives before the server has the client's
			// settings (Telemetry): back off a little, then try again.
			if w := oneLine(err); w != lastWarn {
				lastWarn = w
				emit("WARN receive: %s", w)
			}
			time.Sleep(300 * time.Millisecond)
		}
		return nil
	}
	lastWarn = ""
	return mvs
}

func ack(c rmq.SimpleConsumer, mv *rmq.MessageView) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Ack(ctx, mv); err != nil {
		emit("WARN ack %s: %s", keyOf(mv), oneLine(err))
		return false
	}
	emit("ACKED %s", keyOf(mv))
	return true
}

func got(mv *rmq.MessageView, detail string) {
	emit("GOT %s %s %d %d %s", keyOf(mv), mv.GetMessageId(), mv.GetDeliveryAttempt(), nowMs(), detail)
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// normal: 8 normal messages; a SimpleConsumer acks all but the first one it
// receives, whose invisible duration it changes to 3 s: that one must come
// back (attempt 2) and is acked then. Receiving goes on until the first
// receive's invisible time has passed, so an acked message that came back
// would be seen.
func (r *run) normal() {
	p := r.producer(nil)
	defer p.GracefulStop()
	const n = 8
	for i := 0; i < n; i++ {
		send(p, r.message(fmt.Sprintf("%s-n%d", r.id, i)), "normal")
	}
	c := r.consumer(await)
	defer c.GracefulStop()
	deadline := time.Now().Add(60 * time.Second)
	var firstReceive time.Time
	held := ""
	heldBack := false
	acked := 0
	for time.Now().Before(deadline) {
		if acked >= n && heldBack && time.Since(firstReceive) > receiveInvisible+2*time.Second {
			break
		}
		for _, mv := range receive(c, receiveInvisible) {
			got(mv, "normal")
			if firstReceive.IsZero() {
				firstReceive = time.Now()
			}
			k := keyOf(mv)
			if held == "" && r.mine(mv) {
				held = k
				if err := c.ChangeInvisibleDuration(mv, 3*time.Second); err != nil {
					fatal("change invisible duration of %s: %v", k, err)
				}
				emit("CHANGED %s %d", k, nowMs())
				continue
			}
			if k == held {
				heldBack = true
			}
			if ack(c, mv) && r.mine(mv) {
				acked++
			}
		}
	}
	emit("DONE normal")
}

// fifo: 3 message groups of 4 messages each, sent interleaved; the consumer
// acks each message as it comes, the test checks the order per group.
func (r *run) fifo() {
	p := r.producer(nil)
	defer p.GracefulStop()
	const groups, per = 3, 4
	for i := 0; i < per; i++ {
		for g := 0; g < groups; g++ {
			m := r.message(fmt.Sprintf("%s-f%d-%d", r.id, g, i))
			m.SetMessageGroup(fmt.Sprintf("%s-group%d", r.id, g))
			send(p, m, fmt.Sprintf("group%d/%d", g, i))
		}
	}
	c := r.consumer(await)
	defer c.GracefulStop()
	deadline := time.Now().Add(60 * time.Second)
	acked := 0
	for acked < groups*per && time.Now().Before(deadline) {
		for _, mv := range receive(c, receiveInvisible) {
			g := "-"
			if mg := mv.GetMessageGroup(); mg != nil {
				g = *mg
			}
			got(mv, g)
			if ack(c, mv) && r.mine(mv) {
				acked++
			}
		}
	}
	// Anything acked must not come again.
	for _, mv := range receive(c, receiveInvisible) {
		got(mv, "after-all-acked")
	}
	emit("DONE fifo")
}

// delay: 3 messages with a delivery timestamp 3 s ahead; GOT lines carry
// the receive time, SENT lines the delivery timestamp (Unix ms).
func (r *run) delay() {
	p := r.producer(nil)
	defer p.GracefulStop()
	c := r.consumer(await)
	defer c.GracefulStop()
	const n = 3
	for i := 0; i < n; i++ {
		m := r.message(fmt.Sprintf("%s-d%d", r.id, i))
		at := time.Now().Add(3 * time.Second)
		m.SetDelayTimestamp(at)
		send(p, m, fmt.Sprintf("%d", at.UnixNano()/int64(time.Millisecond)))
	}
	deadline := time.Now().Add(60 * time.Second)
	acked := 0
	for acked < n && time.Now().Before(deadline) {
		for _, mv := range receive(c, receiveInvisible) {
			at := int64(0)
			if ts := mv.GetDeliveryTimestamp(); ts != nil {
				at = ts.UnixNano() / int64(time.Millisecond)
			}
			got(mv, fmt.Sprintf("%d", at))
			if ack(c, mv) && r.mine(mv) {
				acked++
			}
		}
	}
	emit("DONE delay")
}

// transaction: three half messages ended with commit, rollback and not at
// all ("unknown"); the checker commits what the server asks about. The
// committed and the checked-back ones must be consumed, the rolled back
// one never.
func (r *run) transaction() {
	checker := &rmq.TransactionChecker{Check: func(mv *rmq.MessageView) rmq.TransactionResolution {
		k := keyOf(mv)
		if strings.HasSuffix(k, "-unknown") {
			emit("CHECK %s COMMIT", k)
			return rmq.COMMIT
		}
		emit("CHECK %s ROLLBACK", k)
		return rmq.ROLLBACK
	}}
	p := r.producer(checker)
	defer p.GracefulStop()
	for _, end := range []string{"commit", "rollback", "unknown"} {
		m := r.message(fmt.Sprintf("%s-t-%s", r.id, end))
		tx := p.BeginTransaction()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		receipts, err := p.SendWithTransaction(ctx, m, tx)
		cancel()
		if err != nil || len(receipts) == 0 {
			fatal("send half message %s: %v", end, err)
		}
		emit("SENT %s %s half", m.GetKeys()[0], receipts[0].MessageID)
		switch end {
		case "commit":
			err = tx.Commit()
		case "rollback":
			err = tx.RollBack()
		}
		if err != nil {
			fatal("end transaction %s: %v", end, err)
		}
	}
	c := r.consumer(await)
	defer c.GracefulStop()
	deadline := time.Now().Add(90 * time.Second)
	acked := 0
	for acked < 2 && time.Now().Before(deadline) {
		for _, mv := range receive(c, receiveInvisible) {
			got(mv, "transaction")
			if ack(c, mv) && r.mine(mv) {
				acked++
			}
		}
	}
	// The rolled back message would be there by now: one more look.
	for _, mv := range receive(c, receiveInvisible) {
		got(mv, "after-all-acked")
	}
	emit("DONE transaction")
}

// plaintext makes the client dial without TLS. The client always speaks
// TLS (a Java proxy accepts TLS and plaintext on one port); this is for
// diagnosing a server without TLS only, never for a counted run.
func plaintext() {
	dial := rmq.NewRpcClient
	rmq.NewRpcClient = func(target string, opts ...rmq.RpcClientOption) (rmq.RpcClient, error) {
		opts = append(opts, rmq.WithRpcClientConnOption(
			rmq.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials()))))
		return dial(target, opts...)
	}
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: scenarios <normal|fifo|delay|transaction> <endpoint> <topic> <consumerGroup> <runId>")
		os.Exit(2)
	}
	if os.Getenv("rocketmq.client.logRoot") == "" {
		os.Setenv("rocketmq.client.logRoot", os.TempDir()+"/rocketmq-go-grpc-logs")
	}
	rmq.ResetLogger()
	if os.Getenv("GO_GRPC_PLAINTEXT") == "1" {
		plaintext()
	}
	r := &run{endpoint: os.Args[2], topic: os.Args[3], group: os.Args[4], id: os.Args[5]}
	switch os.Args[1] {
	case "normal":
		r.normal()
	case "fifo":
		r.fifo()
	case "delay":
		r.delay()
	case "transaction":
		r.transaction()
	default:
		fatal("unknown scenario %q", os.Args[1])
	}
}
