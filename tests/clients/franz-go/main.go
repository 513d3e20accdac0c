// The franz-go driver of franzgate's client matrix: implements the driver contract of
// tests/common/client_matrix.rs with kgo, franz-go's client.
//
//	driver produce bootstrap=B topic=T count=N [idempotent=true] [acks=all|1] [rate=R] [key_prefix=K]
//	               [transactional_id=X [retry_aborted=true]] [SASL keys]
//	driver consume bootstrap=B topic=T group=G count=N [protocol=classic|consumer] [timeout_ms=M] [SASL keys]
//	SASL keys: user=U password=P mechanism=PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 (SASL_PLAINTEXT)
//
// JSON lines on stdout, the last one the result; the exit code is 0 when the command reached its goal (all
// records acknowledged, or `count` distinct keys seen) and no error reached the application.
//
// KIP-848: `protocol=consumer` sets kgo.ServerSideBalancer. kgo silently falls back to the classic protocol
// when the broker does not advertise ConsumerGroupHeartbeat v1, so the driver watches which group requests it
// actually wrote and reports it as `group_protocol`; a fallback is an error.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const clientName = "franz-go"

// Kafka api keys the request probe counts.
const (
	apiJoinGroup              = 11
	apiInitProducerID         = 22
	apiConsumerGroupHeartbeat = 68
)

// stdout is shared by the callbacks kgo runs on its own goroutines.
var stdoutMu sync.Mutex

func emit(v map[string]any) {
	line, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, "encode output:", err)
		return
	}
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	fmt.Println(string(line))
}

// clientVersion is franz-go's module version, from the build information (go.mod pins it).
func clientVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == "github.com/twmb/franz-go" {
			return strings.TrimPrefix(dep.Version, "v")
		}
	}
	return "unknown"
}

// errorList collects the errors that reached the application, from any goroutine.
type errorList struct {
	mu   sync.Mutex
	errs []string
}

func (l *errorList) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
}

func (l *errorList) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string{}, l.errs...)
}

// args are the command's key=value arguments; each read marks its key known, so leftovers are typos.
type args map[string]string

func parseArgs(raw []string) (args, error) {
	a := args{}
	for _, kv := range raw {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("argument %q is not key=value", kv)
		}
		a[k] = v
	}
	return a, nil
}

func (a args) take(key, fallback string) string {
	if v, ok := a[key]; ok {
		delete(a, key)
		return v
	}
	return fallback
}

func (a args) required(key string) (string, error) {
	v := a.take(key, "")
	if v == "" {
		return "", fmt.Errorf("missing %s=", key)
	}
	return v, nil
}

func (a args) number(key string, fallback int) (int, error) {
	v := a.take(key, "")
	if v == "" {
		return fallback, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q is not a non-negative number", key, v)
	}
	return n, nil
}

func (a args) rejectUnknown() error {
	if len(a) == 0 {
		return nil
	}
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return fmt.Errorf("unknown keys: %s", strings.Join(keys, ", "))
}

// commonOpts are the options of both commands: the bootstrap address, SASL, and kgo's log on stderr.
func commonOpts(a args) ([]kgo.Opt, error) {
	bootstrap, err := a.required("bootstrap")
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
		kgo.ClientID("franzgate-matrix-franz-go"),
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, nil)),
	}
	user, password, mechanism := a.take("user", ""), a.take("password", ""), a.take("mechanism", "")
	if user == "" && password == "" && mechanism == "" {
		return opts, nil
	}
	switch mechanism {
	case "PLAIN", "":
		opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("mechanism=%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", mechanism)
	}
	return opts, nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: driver produce|consume key=value ...")
		os.Exit(2)
	}
	a, err := parseArgs(os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var ok bool
	switch os.Args[1] {
	case "produce":
		ok, err = produce(a)
	case "consume":
		ok, err = consume(a)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// === produce ===

func produce(a args) (bool, error) {
	opts, err := commonOpts(a)
	if err != nil {
		return false, err
	}
	topic, err := a.required("topic")
	if err != nil {
		return false, err
	}
	count, err := a.number("count", -1)
	if err != nil || count < 0 {
		return false, fmt.Errorf("count=: %v", err)
	}
	rate, err := a.number("rate", 0)
	if err != nil {
		return false, err
	}
	prefix := a.take("key_prefix", "key")
	idempotent := a.take("idempotent", "false") == "true"
	transactionalID := a.take("transactional_id", "")
	retryAborted := a.take("retry_aborted", "false") == "true"
	switch acks := a.take("acks", "all"); acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	default:
		return false, fmt.Errorf("acks=%q is not all or 1", acks)
	}
	if err := a.rejectUnknown(); err != nil {
		return false, err
	}
	if transactionalID != "" {
		opts = append(opts, kgo.TransactionalID(transactionalID))
	} else if !idempotent {
		// kgo is idempotent unless told otherwise.
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	probe := &requestProbe{}
	// A bound on retries, so a record that can never be delivered reaches the application as an error.
	opts = append(opts, kgo.RecordDeliveryTimeout(90*time.Second), kgo.WithHooks(probe))
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return false, err
	}
	defer client.Close()

	ctx := context.Background()
	start := time.Now()
	pace := func(i int) {
		if rate > 0 {
			// Pace against the start, so a slow acknowledgement does not lower the average rate.
			if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); wait > 0 {
				time.Sleep(wait)
			}
		}
	}
	if transactionalID != "" {
		run := transactionalRun{client, topic, prefix, count, retryAborted, pace}
		produced, errors, abortReasons := run.run(ctx)
		emit(map[string]any{
			"client": clientName, "version": clientVersion(), "produced": produced, "errors": errors,
			"idempotent": probe.initProducerIDs.Load() > 0, "aborts": len(abortReasons), "abort_reasons": abortReasons,
		})
		return produced == int64(count) && len(errors) == 0, nil
	}
	var acked atomic.Int64
	errs := &errorList{}
	for i := 0; i < count; i++ {
		pace(i)
		key := fmt.Sprintf("%s-%d", prefix, i)
		record := &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(key)}
		client.Produce(ctx, record, func(r *kgo.Record, err error) {
			if err != nil {
				errs.add("%s: %v", r.Key, err)
				return
			}
			if n := acked.Add(1); n%100 == 0 {
				emit(map[string]any{"acked": n})
			}
		})
		// Records handed to the client so far: the switch tests place each between two switches.
		if sent := i + 1; sent%100 == 0 {
			emit(map[string]any{"sent": sent})
		}
	}
	if err := client.Flush(ctx); err != nil {
		errs.add("flush: %v", err)
	}
	produced := acked.Load()
	errors := errs.list()
	emit(map[string]any{
		"client": clientName, "version": clientVersion(), "produced": produced, "errors": errors,
		// kgo asks for a producer id only when it writes idempotently.
		"idempotent": probe.initProducerIDs.Load() > 0,
	})
	return produced == int64(count) && len(errors) == 0, nil
}

// === consume ===

// requestProbe counts the requests kgo wrote that tell how it works: InitProducerId (an idempotent producer),
// JoinGroup (a classic group member) or ConsumerGroupHeartbeat (a KIP-848 member).
type requestProbe struct {
	initProducerIDs, joins, heartbeats848 atomic.Int64
}

func (g *requestProbe) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		return
	}
	switch key {
	case apiInitProducerID:
		g.initProducerIDs.Add(1)
	case apiJoinGroup:
		g.joins.Add(1)
	case apiConsumerGroupHeartbeat:
		g.heartbeats848.Add(1)
	}
}

func (g *requestProbe) protocol() string {
	switch {
	case g.heartbeats848.Load() > 0 && g.joins.Load() == 0:
		return "consumer"
	case g.joins.Load() > 0 && g.heartbeats848.Load() == 0:
		return "classic"
	case g.joins.Load() > 0:
		return "mixed"
	default:
		return "none"
	}
}

func consume(a args) (bool, error) {
	opts, err := commonOpts(a)
	if err != nil {
		return false, err
	}
	topic, err := a.required("topic")
	if err != nil {
		return false, err
	}
	group, err := a.required("group")
	if err != nil {
		return false, err
	}
	count, err := a.number("count", -1)
	if err != nil || count < 0 {
		return false, fmt.Errorf("count=: %v", err)
	}
	timeoutMs, err := a.number("timeout_ms", 60000)
	if err != nil {
		return false, err
	}
	protocol := a.take("protocol", "classic")
	if protocol != "classic" && protocol != "consumer" {
		return false, fmt.Errorf("protocol=%q is not classic or consumer", protocol)
	}
	if err := a.rejectUnknown(); err != nil {
		return false, err
	}
	probe := &requestProbe{}
	opts = append(opts,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Commits are the driver's, after each poll, so a failed commit reaches the application.
		kgo.DisableAutoCommit(),
		kgo.WithHooks(probe),
	)
	if protocol == "consumer" {
		// With kgo's default balancer (cooperative-sticky) the server assigns with "uniform".
		opts = append(opts, kgo.ServerSideBalancer())
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return false, err
	}
	defer client.Close()

	errs := &errorList{}
	keys := map[string]struct{}{}
	records := 0
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutMs)*time.Millisecond)
	defer cancel()
	for len(keys) < count && ctx.Err() == nil {
		fetches := client.PollFetches(ctx)
		fetches.EachError(func(t string, p int32, err error) {
			if ctx.Err() == nil || err != ctx.Err() {
				errs.add("fetch %s[%d]: %v", t, p, err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			keys[string(r.Key)] = struct{}{}
			if records++; records%100 == 0 {
				emit(map[string]any{"consumed": records})
			}
		})
		if err := client.CommitUncommittedOffsets(context.Background()); err != nil {
			errs.add("commit: %v", err)
		}
	}
	used := probe.protocol()
	if used != protocol {
		errs.add("asked for protocol=%s but the client used %s (JoinGroup requests: %d, "+
			"ConsumerGroupHeartbeat requests: %d)", protocol, used, probe.joins.Load(), probe.heartbeats848.Load())
	}
	seen := make([]string, 0, len(keys))
	for k := range keys {
		seen = append(seen, k)
	}
	sort.Strings(seen)
	errors := errs.list()
	emit(map[string]any{
		"client": clientName, "version": clientVersion(), "consumed": len(keys), "keys": seen,
		"errors": errors, "group_protocol": used,
	})
	return len(keys) >= count && len(errors) == 0, nil
}
