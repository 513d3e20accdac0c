package main

// Transactions of the produce command (transactional_id=X): records in transactions of 100, as an exactly-once
// application writes them. With retry_aborted=true a transaction that fails with an error the application can
// abort is aborted and its records sent again in a new one (as the Java and Python drivers do); without it an
// abort is an error. `produced` and the `acked` progress count records of committed transactions.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	transactionSize = 100
	// A transaction aborted more often than this ends the run: the producer is stuck, not recovering.
	maxAbortsPerTransaction = 20
)

// transactionalRun is what the produce command needs to write transactions.
type transactionalRun struct {
	client       *kgo.Client
	topic        string
	prefix       string
	count        int
	retryAborted bool
	pace         func(i int)
}

// run writes every transaction; it returns the records committed, the errors and the abort reasons.
func (t *transactionalRun) run(ctx context.Context) (int64, []string, []string) {
	var committed int64
	var errs, abortReasons []string
	for first := 0; first < t.count; first += transactionSize {
		end := min(t.count, first+transactionSize)
		for aborts := 0; ; {
			reason, fatal := t.transaction(ctx, first, end)
			if fatal != nil {
				return committed, append(errs, fmt.Sprintf("fatal: %v", fatal)), abortReasons
			}
			if reason == "" {
				break
			}
			abortReasons = append(abortReasons, fmt.Sprintf("%s-%d..%d: %s", t.prefix, first, end-1, reason))
			aborts++
			if !t.retryAborted {
				return committed, append(errs, "aborted: "+reason), abortReasons
			}
			if aborts > maxAbortsPerTransaction {
				return committed, append(errs, fmt.Sprintf("gave up after %d aborts: %s", aborts, reason)), abortReasons
			}
		}
		committed += int64(end - first)
		emit(map[string]any{"acked": committed})
	}
	return committed, errs, abortReasons
}

// transaction writes records first..end-1 in one transaction: "" once committed, the reason when it was
// aborted, or an error the application cannot recover from.
func (t *transactionalRun) transaction(ctx context.Context, first, end int) (string, error) {
	if err := t.client.BeginTransaction(); err != nil {
		return "", fmt.Errorf("begin: %w", err)
	}
	var mu sync.Mutex
	var failed []string
	for i := first; i < end; i++ {
		t.pace(i)
		key := fmt.Sprintf("%s-%d", t.prefix, i)
		record := &kgo.Record{Topic: t.topic, Key: []byte(key), Value: []byte(key)}
		t.client.Produce(ctx, record, func(r *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("%s: %v", r.Key, err))
				mu.Unlock()
			}
		})
		if sent := i + 1; sent%100 == 0 {
			emit(map[string]any{"sent": sent})
		}
	}
	flushErr := t.client.Flush(ctx)
	mu.Lock()
	reason := ""
	if len(failed) > 0 {
		reason = "record failed: " + failed[0]
	} else if flushErr != nil {
		reason = "flush: " + flushErr.Error()
	}
	mu.Unlock()
	if reason == "" {
		err := t.client.EndTransaction(ctx, kgo.TryCommit)
		if err == nil {
			return "", nil
		}
		reason = "commit: " + err.Error()
	}
	// kgo's way out of a failed transaction: drop what is still buffered, then abort (which bumps the
	// producer's epoch when the error asked for it, KIP-360).
	if err := t.client.AbortBufferedRecords(ctx); err != nil {
		return "", fmt.Errorf("abort buffered records after %s: %w", reason, err)
	}
	abortCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := t.client.EndTransaction(abortCtx, kgo.TryAbort); err != nil {
		return "", fmt.Errorf("abort after %s: %w", reason, err)
	}
	return reason, nil
}
