package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Execution kinds: what ran.
const (
	// ExecutionJob is one run of a job-mode function: a fresh container
	// that ran to completion (pkg/job).
	ExecutionJob = "job"
	// ExecutionAsync is one attempt of an async call (pkg/async); its ID
	// is the call's ID plus the attempt number.
	ExecutionAsync = "async"
)

// ExecutionKinds are the kinds a record may have.
var ExecutionKinds = []string{ExecutionJob, ExecutionAsync}

// Execution states. Running is the only one that is not final.
const (
	ExecutionRunning   = "running"
	ExecutionSucceeded = "succeeded" // exit 0, or an answer below 400 (as an async call counts success)
	ExecutionFailed    = "failed"    // a non-zero exit, an answer of 400 or above, no answer, or cancelled
	ExecutionTimedOut  = "timeout"   // killed at its exec timeout
	ExecutionOOMKilled = "oom-killed"
	// ExecutionInterrupted: the daemon stopped (or died) while it ran; it
	// is set at the next start, and the container removed.
	ExecutionInterrupted = "interrupted"
)

// ExecutionStates are the states a record may be in, running first.
var ExecutionStates = []string{ExecutionRunning, ExecutionSucceeded, ExecutionFailed, ExecutionTimedOut, ExecutionOOMKilled, ExecutionInterrupted}

// Execution is the record of one execution, of a job or of an async call:
// one record type for both, so GET /system/executions lists them together.
type Execution struct {
	// ID is the call's ID (X-Call-Id) for a job run; for an async attempt
	// the call's ID and the attempt number ("<id>.<n>").
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Attempt is an async attempt's number n: 1 for the call's first
	// invocation, counting every invocation started, one a crash
	// interrupted included (so it may run ahead of the call's attempts).
	Attempt int `json:"attempt,omitempty"`
	// Function is the store key "namespace/name".
	Function string `json:"function"`
	State    string `json:"state"`

	StartedAt       time.Time `json:"startedAt"`
	FinishedAt      time.Time `json:"finishedAt,omitzero"`
	DurationSeconds float64   `json:"durationSeconds,omitempty"`

	// ExitCode of a job's process (nil before it exited or when it never
	// started); StatusCode the HTTP status the caller got.
	ExitCode   *int `json:"exitCode,omitempty"`
	StatusCode int  `json:"statusCode,omitempty"`
	OOMKilled  bool `json:"oomKilled,omitempty"`
	// Error says why it failed when the process or function did not.
	Error string `json:"error,omitempty"`

	BytesIn  int64 `json:"bytesIn"`
	BytesOut int64 `json:"bytesOut"`
	// The first and last few KiB of a job's stdout and stderr (Tail only
	// when there was more than Head holds).
	StdoutHead string `json:"stdoutHead,omitempty"`
	StdoutTail string `json:"stdoutTail,omitempty"`
	StderrHead string `json:"stderrHead,omitempty"`
	StderrTail string `json:"stderrTail,omitempty"`
}

// Final reports whether the execution has ended.
func (e Execution) Final() bool { return e.State != ExecutionRunning }

// Failed reports whether the execution ended other than succeeded: the
// failures /debug/reconcile counts.
func (e Execution) Failed() bool { return failedState(e.State) }

func failedState(state string) bool {
	return state != ExecutionRunning && state != ExecutionSucceeded
}

// ExecutionFilter selects executions to list; zero fields select all.
type ExecutionFilter struct {
	Function string // store key
	// Namespace selects the functions of one namespace when Function is "".
	Namespace string
	State     string
	Kind      string
	// Limit keeps the newest Limit (by StartedAt); 0 is no limit.
	Limit int
}

// Executions keeps execution records, newest first when listed, within
// bounds of count and age.
type Executions interface {
	// PutExecution stores e under e.ID, replacing a record with that ID
	// (a running record is put again when it ends). Grouped write:
	// durable when it returns. A record without ID, function or start, or
	// with an unknown kind or state, is refused (an error matching no
	// sentinel); times are kept in UTC, and a final record with both times
	// but no duration gets the one between them.
	PutExecution(ctx context.Context, e Execution) error
	// GetExecution returns the record under id (ErrNotFound otherwise).
	GetExecution(ctx context.Context, id string) (Execution, error)
	// ListExecutions returns the records f selects, newest first.
	ListExecutions(ctx context.Context, f ExecutionFilter) ([]Execution, error)
	// PruneExecutions removes final records that ended more than maxAge
	// ago (0: no age bound) and the oldest final records beyond max (0: no
	// count bound), and returns how many it removed. Running records are
	// never removed.
	PruneExecutions(ctx context.Context, max int, maxAge time.Duration) (int, error)
}

// ExecutionSummary is what /debug/reconcile shows of one function's
// executions: how many records are kept, how many of them failed or still
// run, and the newest few.
type ExecutionSummary struct {
	Function string `json:"function"`
	Retained int    `json:"retained"`
	Running  int    `json:"running"`
	// Failures counts the retained records that ended other than
	// succeeded (Execution.Failed).
	Failures int         `json:"failures"`
	Last     []Execution `json:"last"`
}

// ExecutionSummaries summarizes the execution records per function.
type ExecutionSummaries interface {
	// SummarizeExecutions returns one summary per function that has
	// records, sorted by function, each with its newest last records. It
	// reads the index only, and decodes only the records it returns.
	SummarizeExecutions(ctx context.Context, last int) ([]ExecutionSummary, error)
}

// Execution records live in two buckets written in the same transaction:
// the records, JSON under their ID, and an index ordered by start time.
// Listing newest first, pruning oldest first, finding running records and
// summarizing per function walk the index, whose entries are a few dozen
// bytes, and decode only the records they return: with tens of thousands
// of records a list of 100 decodes 100.
var (
	executionRecords = &bucket[Execution]{
		name: []byte("executions"),
		kind: "execution",
		key:  func(e Execution) string { return e.ID },
	}
	// executionIndex holds one entry per record. Key: the start time as
	// 8 bytes big-endian Unix nanoseconds, then the ID, so byte order is
	// start order. Value: the end time (8 bytes, 0 while running), then
	// state, kind and function separated by 0 bytes.
	executionIndex = []byte("executionsByStart")
)

// maxExecutionID bounds a record's ID: call IDs are at most 128 bytes, an
// attempt number adds a few.
const maxExecutionID = 256

// execEntry is an index entry, its slices valid during the transaction.
type execEntry struct {
	id                    []byte
	started, finished     int64
	state, kind, function []byte
}

// unixNano is t in nanoseconds since 1970 for the index, 0 for the zero
// time or before 1970 (sorted first, as the oldest).
func unixNano(t time.Time) int64 {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return 0
	}
	return t.UnixNano()
}

func execIndexKey(e Execution) []byte {
	k := make([]byte, 8, 8+len(e.ID))
	binary.BigEndian.PutUint64(k, uint64(unixNano(e.StartedAt)))
	return append(k, e.ID...)
}

func execIndexValue(e Execution) []byte {
	v := make([]byte, 8, 8+len(e.State)+len(e.Kind)+len(e.Function)+2)
	binary.BigEndian.PutUint64(v, uint64(unixNano(e.FinishedAt)))
	v = append(v, e.State...)
	v = append(v, 0)
	v = append(v, e.Kind...)
	v = append(v, 0)
	return append(v, e.Function...)
}

// parseExecEntry reads an index entry; ok is false for a malformed one.
func parseExecEntry(k, v []byte) (ent execEntry, ok bool) {
	if len(k) <= 8 || len(v) < 8 {
		return ent, false
	}
	ent.started = int64(binary.BigEndian.Uint64(k))
	ent.id = k[8:]
	ent.finished = int64(binary.BigEndian.Uint64(v))
	rest := v[8:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return ent, false
	}
	ent.state, rest = rest[:i], rest[i+1:]
	if i = bytes.IndexByte(rest, 0); i < 0 {
		return ent, false
	}
	ent.kind, ent.function = rest[:i], rest[i+1:]
	return ent, true
}

// endedAt is when a final record ended, for age: its end, or its start
// when it has none.
func (ent execEntry) endedAt() int64 {
	if ent.finished != 0 {
		return ent.finished
	}
	return ent.started
}

func (ent execEntry) final() bool { return string(ent.state) != ExecutionRunning }

// matches reports whether f selects the entry.
func (f ExecutionFilter) matches(ent execEntry) bool {
	switch {
	case f.Function != "" && string(ent.function) != f.Function:
		return false
	case f.Function == "" && f.Namespace != "" && !hasNamespace(ent.function, f.Namespace):
		return false
	case f.State != "" && string(ent.state) != f.State:
		return false
	case f.Kind != "" && string(ent.kind) != f.Kind:
		return false
	}
	return true
}

func hasNamespace(key []byte, ns string) bool {
	return len(key) > len(ns) && key[len(ns)] == '/' && string(key[:len(ns)]) == ns
}

// validExecution refuses a record that could not be indexed or listed
// sensibly, before anything is written.
func validExecution(e Execution) error {
	switch {
	case e.ID == "" || len(e.ID) > maxExecutionID:
		return fmt.Errorf("id must be 1 to %d bytes", maxExecutionID)
	case e.Function == "" || strings.IndexByte(e.Function, 0) >= 0:
		return errors.New("no function")
	case !slices.Contains(ExecutionKinds, e.Kind):
		return fmt.Errorf("kind %q: want one of %s", e.Kind, strings.Join(ExecutionKinds, ", "))
	case !slices.Contains(ExecutionStates, e.State):
		return fmt.Errorf("state %q: want one of %s", e.State, strings.Join(ExecutionStates, ", "))
	case e.StartedAt.IsZero():
		return errors.New("no start time")
	}
	return nil
}

// normalize puts e's times in UTC without a monotonic reading, as JSON
// gives them back, and fills in the duration of a final record that has
// both times but none.
func (e *Execution) normalize() {
	e.StartedAt = e.StartedAt.UTC()
	if !e.FinishedAt.IsZero() {
		e.FinishedAt = e.FinishedAt.UTC()
		if e.DurationSeconds == 0 && e.Final() {
			e.DurationSeconds = max(e.FinishedAt.Sub(e.StartedAt).Seconds(), 0)
		}
	}
}

// putExecution stores e and its index entry in tx, dropping the entry of
// the record it replaces when the start time changed.
func putExecution(tx *txn, e Execution) error {
	about := executionRecords.about(e.ID)
	if err := validExecution(e); err != nil {
		return about.wrap(err)
	}
	e.normalize()
	key := execIndexKey(e)
	idx := tx.kv.bucket(executionIndex)
	if old := tx.kv.bucket(executionRecords.name).Get([]byte(e.ID)); old != nil {
		prev, err := executionRecords.decode(e.ID, old)
		if err != nil {
			return err // a damaged record is not overwritten: its entry is unknown
		}
		if oldKey := execIndexKey(prev); !bytes.Equal(oldKey, key) {
			if err := idx.Delete(oldKey); err != nil {
				return fmt.Errorf("%s: index: %w", about, err)
			}
		}
	}
	if _, err := executionRecords.save(tx, e.ID, e); err != nil {
		return err
	}
	if err := idx.Put(key, execIndexValue(e)); err != nil {
		return fmt.Errorf("%s: index: %w", about, err)
	}
	return nil
}

// PutExecution implements Executions. It refuses (matching no sentinel) a
// record without ID, function or start time, or with an unknown kind or
// state.
func (e *engine) PutExecution(ctx context.Context, ex Execution) error {
	_, err := writeGrouped(ctx, e, executionRecords.about(ex.ID), func(tx *txn) (struct{}, error) {
		return struct{}{}, putExecution(tx, ex)
	})
	return err
}

// GetExecution implements Executions.
func (e *engine) GetExecution(ctx context.Context, id string) (Execution, error) {
	return getOne(ctx, e, executionRecords, id)
}

// errBadIndex is what reads fail with on an index entry they cannot use:
// Check reports the details.
var errBadIndex = errors.New("execution index damaged (run the state file check)")

// ListExecutions implements Executions.
func (e *engine) ListExecutions(ctx context.Context, f ExecutionFilter) ([]Execution, error) {
	about := subject{what: "list executions", bare: true}
	out := make([]Execution, 0)
	err := e.read(ctx, about, func(tx *txn) error {
		recs := tx.kv.bucket(executionRecords.name)
		return scanNewest(tx, about, func(ent execEntry) (bool, error) {
			if !f.matches(ent) {
				return true, nil
			}
			rec, err := decodeIndexed(recs, ent)
			if err != nil {
				return false, err
			}
			out = append(out, rec)
			return f.Limit <= 0 || len(out) < f.Limit, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanNewest calls visit with every index entry, newest first, until it
// returns false or an error. An entry that cannot be parsed ends the scan
// with errBadIndex.
func scanNewest(tx *txn, about subject, visit func(ent execEntry) (more bool, err error)) error {
	var err error
	tx.kv.bucket(executionIndex).scanReverse(func(k, v []byte) bool {
		ent, ok := parseExecEntry(k, v)
		if !ok {
			err = about.wrap(errBadIndex)
			return false
		}
		var more bool
		more, err = visit(ent)
		return more && err == nil
	})
	return err
}

// decodeIndexed returns the record an index entry points at.
func decodeIndexed(recs kvBucket, ent execEntry) (Execution, error) {
	v := recs.Get(ent.id)
	if v == nil {
		return Execution{}, executionRecords.about(string(ent.id)).wrap(errBadIndex)
	}
	return executionRecords.decode(string(ent.id), v)
}

// pruneBatch bounds the records one prune transaction deletes, so one
// commit stays small and writers waiting behind it are not held long.
const pruneBatch = 1000

// PruneExecutions implements Executions. A read finds whether anything is
// due first, so the usual pass, with nothing to prune, writes nothing.
// Age is counted from a record's end (its start when it has none).
func (e *engine) PruneExecutions(ctx context.Context, maxCount int, maxAge time.Duration) (int, error) {
	about := subject{what: "prune executions", bare: true}
	var cutoff int64 // 0: no age bound
	if maxAge > 0 {
		cutoff = time.Now().Add(-maxAge).UnixNano()
	}
	due := 0
	err := e.read(ctx, about, func(tx *txn) error {
		var err error
		due, err = planPrune(tx, maxCount, cutoff, 1, nil)
		return err
	})
	if err != nil || due == 0 {
		return 0, err
	}
	total := 0
	for {
		n, err := writeGrouped(ctx, e, about, func(tx *txn) (int, error) {
			var keys [][]byte
			n, err := planPrune(tx, maxCount, cutoff, pruneBatch, func(k []byte) { keys = append(keys, bytes.Clone(k)) })
			if err != nil {
				return 0, err
			}
			recs, idx := tx.kv.bucket(executionRecords.name), tx.kv.bucket(executionIndex)
			for _, k := range keys {
				if err := recs.Delete(k[8:]); err != nil {
					return 0, about.wrap(err)
				}
				if err := idx.Delete(k); err != nil {
					return 0, about.wrap(err)
				}
			}
			tx.written = tx.written || n > 0
			return n, nil
		})
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}

// planPrune walks the index oldest first and calls del (when set) with the
// index key of every final record due for pruning, at most limit of them:
// those beyond maxCount final records (maxCount > 0), then those that
// ended before cutoff (cutoff > 0). It returns how many it found.
func planPrune(tx *txn, maxCount int, cutoff int64, limit int, del func(k []byte)) (int, error) {
	idx := tx.kv.bucket(executionIndex)
	finals := 0
	var err error
	idx.scan(nil, func(k, v []byte) bool {
		ent, ok := parseExecEntry(k, v)
		if !ok {
			err = errBadIndex
			return false
		}
		if ent.final() {
			finals++
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	found := 0
	idx.scan(nil, func(k, v []byte) bool {
		ent, _ := parseExecEntry(k, v)
		over := maxCount > 0 && finals > maxCount
		if !over && (cutoff == 0 || ent.started >= cutoff) {
			// Every later record started, so ended, after cutoff.
			return false
		}
		if !ent.final() || !over && ent.endedAt() >= cutoff {
			return true
		}
		if del != nil {
			del(k)
		}
		finals--
		found++
		return found < limit
	})
	return found, nil
}

// SummarizeExecutions implements ExecutionSummaries.
func (e *engine) SummarizeExecutions(ctx context.Context, last int) ([]ExecutionSummary, error) {
	about := subject{what: "summarize executions", bare: true}
	byFn := map[string]*ExecutionSummary{}
	err := e.read(ctx, about, func(tx *txn) error {
		recs := tx.kv.bucket(executionRecords.name)
		return scanNewest(tx, about, func(ent execEntry) (bool, error) {
			s := byFn[string(ent.function)]
			if s == nil {
				s = &ExecutionSummary{Function: string(ent.function), Last: make([]Execution, 0, last)}
				byFn[s.Function] = s
			}
			s.Retained++
			switch {
			case !ent.final():
				s.Running++
			case failedState(string(ent.state)):
				s.Failures++
			}
			if len(s.Last) < last {
				rec, err := decodeIndexed(recs, ent)
				if err != nil {
					return false, err
				}
				s.Last = append(s.Last, rec)
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := make([]ExecutionSummary, 0, len(byFn))
	for _, s := range byFn {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b ExecutionSummary) int { return strings.Compare(a.Function, b.Function) })
	return out, nil
}

// checkExecutions verifies that records and index agree: one entry per
// record, under the record's start and ID, saying its end, state, kind
// and function.
func checkExecutions(tx *txn) error {
	var errs []error
	recs := tx.kv.bucket(executionRecords.name)
	idx := tx.kv.bucket(executionIndex)
	if recs == nil || idx == nil {
		return errors.New("execution buckets missing")
	}
	entries := 0
	idx.scan(nil, func(k, v []byte) bool {
		entries++
		ent, ok := parseExecEntry(k, v)
		if !ok {
			errs = append(errs, fmt.Errorf("execution index: malformed entry %q", k))
			return true
		}
		rec, err := decodeIndexed(recs, ent)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("execution index entry %q: %w", k, err))
		case !bytes.Equal(execIndexKey(rec), k) || !bytes.Equal(execIndexValue(rec), v):
			errs = append(errs, fmt.Errorf("execution index entry %q does not match its record", k))
		}
		return true
	})
	records := 0
	recs.scan(nil, func(_, _ []byte) bool { records++; return true })
	if records != entries {
		errs = append(errs, fmt.Errorf("execution index: %d entries for %d records", entries, records))
	}
	return errors.Join(errs...)
}
