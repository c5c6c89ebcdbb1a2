package store

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"time"
)

// Async call states, as Call.State records them. Queued, Running and
// Retrying are pending: the call will be (or is being) invoked. The others
// are final: a final call is never invoked again.
const (
	CallQueued    = "queued"
	CallRunning   = "running"
	CallRetrying  = "retrying"
	CallSucceeded = "succeeded"
	CallFailed    = "failed"
	CallCancelled = "cancelled"
)

// Callback delivery states, as Call.Callback records them ("" when the call
// has no callback URL).
const (
	CallbackPending   = "pending"
	CallbackDelivered = "delivered"
	CallbackFailed    = "failed"
)

// Call is the record of one accepted async invocation: what was asked for,
// where it is, and what came of it. Its request headers and body, and the
// response kept for its callback, are a CallPayload stored beside it, so
// that listing and updating records never decodes bodies.
type Call struct {
	ID string `json:"id"`
	// Seq orders calls by acceptance; it survives restarts.
	Seq uint64 `json:"seq"`
	// Function is the store key "namespace/name" of the function called.
	Function string `json:"function"`
	// Method, Path and Query are the invocation as sent, the path being
	// what follows /async-function/{name}.
	Method      string `json:"method"`
	Path        string `json:"path"`
	Query       string `json:"query,omitempty"`
	CallbackURL string `json:"callbackUrl,omitempty"`

	State string `json:"state"`
	// Attempts is how many invocations have finished (failed ones
	// included); MaxAttempts the number allowed, fixed when the first
	// attempt was made (0 before that).
	Attempts    int `json:"attempts"`
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// NextAttemptAt is when a retrying call is tried again.
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
	// LastCode is the status of the last attempt; LastError says why it
	// failed when the function did not answer (or why the call was
	// cancelled).
	LastCode  int    `json:"lastCode,omitempty"`
	LastError string `json:"lastError,omitempty"`

	AcceptedAt time.Time `json:"acceptedAt"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// DurationSeconds is how long the last attempt took.
	DurationSeconds float64 `json:"durationSeconds,omitempty"`

	// Callback is the delivery state of the callback ("" without one).
	Callback         string    `json:"callback,omitempty"`
	CallbackAttempts int       `json:"callbackAttempts,omitempty"`
	CallbackCode     int       `json:"callbackCode,omitempty"`
	CallbackError    string    `json:"callbackError,omitempty"`
	CallbackNextAt   time.Time `json:"callbackNextAt,omitzero"`
}

// Pending reports whether the call is still to be invoked.
func (c Call) Pending() bool {
	return c.State == CallQueued || c.State == CallRunning || c.State == CallRetrying
}

// Done reports whether nothing is left to do for the call: it is final and
// its callback, if any, is no longer pending. Only done calls are pruned.
func (c Call) Done() bool { return !c.Pending() && c.Callback != CallbackPending }

// CallPayload is the bulk of a call: the request while it is pending, the
// response while its callback is pending.
type CallPayload struct {
	ID     string      `json:"id"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body,omitempty"`
	// Result is the function's response, kept for the callback.
	Result *CallResult `json:"result,omitempty"`
}

// CallResult is a function's response (or the proxy's, when it failed).
type CallResult struct {
	Code   int         `json:"code"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body,omitempty"`
}

// PayloadChange says what an UpdateCall does besides updating the call:
// to its payload, keep it (zero value), Drop it, or replace it with Set;
// and, with Execution, put that execution record in the same write (the
// record of the attempt whose outcome the update writes), so that a
// call's attempts and their records never disagree, and cost one commit.
type PayloadChange struct {
	Set       *CallPayload
	Drop      bool
	Execution *Execution
}

// Calls keeps async calls: accepted durably before they are acknowledged,
// updated as they run, pruned when done. Its writes are grouped (kv.batch):
// concurrent ones share one fsync, which is what makes thousands of
// durable accepts a second possible.
type Calls interface {
	// AcceptCall stores a new call and its payload, with Seq set, if the
	// function c.Function exists (an error wrapping ErrNotFound otherwise)
	// and the ID is free. A call already stored under the ID for the same
	// function is returned as it is with dup true (a client retrying its
	// accept); for another function it is ErrConflict.
	AcceptCall(ctx context.Context, c Call, p CallPayload) (stored Call, dup bool, err error)
	// UpdateCall applies change to the call under id (ErrNotFound when
	// absent) in one grouped write; change's error aborts it and comes
	// back as it is. change may run more than once.
	UpdateCall(ctx context.Context, id string, change func(c *Call) (PayloadChange, error)) (Call, error)
	// GetCall returns the call under id.
	GetCall(ctx context.Context, id string) (Call, error)
	// GetCallPayload returns the payload of the call under id.
	GetCallPayload(ctx context.Context, id string) (CallPayload, error)
	// ListCalls returns every call, sorted by Seq.
	ListCalls(ctx context.Context) ([]Call, error)
	// DeleteCalls removes the calls under ids and their payloads; absent
	// ones are skipped.
	DeleteCalls(ctx context.Context, ids []string) error
}

var (
	callRecords = &bucket[Call]{
		name: []byte("calls"),
		kind: "call",
		key:  func(c Call) string { return c.ID },
	}
	callPayloads = &bucket[CallPayload]{
		name: []byte("callPayloads"),
		kind: "call payload",
		key:  func(p CallPayload) string { return p.ID },
	}
	// callSeq is the bucket whose sequence numbers calls.
	callSeq = callRecords
)

// AcceptCall implements Calls.
func (e *engine) AcceptCall(ctx context.Context, c Call, p CallPayload) (Call, bool, error) {
	type accepted struct {
		c   Call
		dup bool
	}
	about := callRecords.about(c.ID)
	if c.ID == "" {
		return Call{}, false, about.wrap(errors.New("empty call id"))
	}
	p.ID = c.ID
	res, err := writeGrouped(ctx, e, about, func(tx *txn) (accepted, error) {
		switch prev, err := callRecords.get(tx, c.ID); {
		case err == nil && prev.Function != c.Function:
			return accepted{}, about.wrap(ErrConflict)
		case err == nil:
			return accepted{c: prev, dup: true}, nil // writes nothing
		case !errors.Is(err, ErrNotFound):
			return accepted{}, err // a damaged record is not overwritten
		}
		if !functionRecords.exists(tx, c.Function) {
			return accepted{}, functionRecords.about(c.Function).wrap(ErrNotFound)
		}
		seq, err := tx.kv.bucket(callSeq.name).NextSequence()
		if err != nil {
			return accepted{}, about.wrap(err)
		}
		c.Seq = seq
		c.inUTC()
		if _, err := callPayloads.save(tx, c.ID, p); err != nil {
			return accepted{}, err
		}
		_, err = callRecords.save(tx, c.ID, c)
		return accepted{c: c}, err
	})
	if err != nil {
		return Call{}, false, err
	}
	return res.c, res.dup, nil
}

// UpdateCall implements Calls.
func (e *engine) UpdateCall(ctx context.Context, id string, change func(c *Call) (PayloadChange, error)) (Call, error) {
	return writeGrouped(ctx, e, callRecords.about(id), func(tx *txn) (Call, error) {
		c, err := callRecords.get(tx, id)
		if err != nil {
			return Call{}, err
		}
		pc, err := change(&c)
		if err != nil {
			return Call{}, err
		}
		c.ID = id
		switch {
		case pc.Set != nil:
			p := *pc.Set
			p.ID = id
			if _, err := callPayloads.save(tx, id, p); err != nil {
				return Call{}, err
			}
		case pc.Drop && callPayloads.exists(tx, id):
			if err := callPayloads.delete(tx, id); err != nil {
				return Call{}, err
			}
		}
		if pc.Execution != nil {
			if err := putExecution(tx, *pc.Execution); err != nil {
				return Call{}, err
			}
		}
		c.inUTC()
		_, err = callRecords.save(tx, id, c)
		return c, err
	})
}

// GetCall implements Calls.
func (e *engine) GetCall(ctx context.Context, id string) (Call, error) {
	return getOne(ctx, e, callRecords, id)
}

// GetCallPayload implements Calls.
func (e *engine) GetCallPayload(ctx context.Context, id string) (CallPayload, error) {
	return getOne(ctx, e, callPayloads, id)
}

// getOne reads one record of b in a read transaction.
func getOne[T any](ctx context.Context, e *engine, b *bucket[T], key string) (T, error) {
	var rec T
	err := e.read(ctx, b.about(key), func(tx *txn) error {
		var err error
		rec, err = b.get(tx, key)
		return err
	})
	return rec, err
}

// ListCalls implements Calls.
func (e *engine) ListCalls(ctx context.Context) ([]Call, error) {
	list, err := listIn(ctx, e, subject{what: "list calls", bare: true}, callRecords, nil)
	if err != nil {
		return nil, err
	}
	sortBySeq(list)
	return list, nil
}

// DeleteCalls implements Calls.
func (e *engine) DeleteCalls(ctx context.Context, ids []string) error {
	_, err := writeGrouped(ctx, e, subject{what: "delete calls", bare: true}, func(tx *txn) (struct{}, error) {
		for _, id := range ids {
			for _, b := range []interface {
				exists(*txn, string) bool
				delete(*txn, string) error
			}{callRecords, callPayloads} {
				if !b.exists(tx, id) {
					continue
				}
				if err := b.delete(tx, id); err != nil {
					return struct{}{}, err
				}
			}
		}
		return struct{}{}, nil
	})
	return err
}

// inUTC puts every time of c in UTC without a monotonic reading, as JSON
// gives them back, so that what a write returns equals what a read will
// without decoding the stored bytes again (bucket.save).
func (c *Call) inUTC() {
	for _, t := range []*time.Time{&c.NextAttemptAt, &c.AcceptedAt, &c.StartedAt, &c.FinishedAt, &c.CallbackNextAt} {
		if !t.IsZero() {
			*t = t.UTC()
		}
	}
}

func sortBySeq(calls []Call) {
	slices.SortFunc(calls, func(a, b Call) int { return cmp.Compare(a.Seq, b.Seq) })
}
