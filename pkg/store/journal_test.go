package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// fakeJournal is a Journal in memory: the last snapshot and the entries
// appended after it. It keeps the op slices it is given as they are, so a
// store that handed it memory it reuses (or bbolt's memory map) would show
// up as a wrong replay.
type fakeJournal struct {
	mu          sync.Mutex
	snap        []Op
	hasSnap     bool
	entries     [][]Op
	appendErr   error // Append fails with it when set
	snapshotErr error // Snapshot fails with it when set
	replayErr   error // Replay fails with it, after applying everything, when set

	appends, snapshots, snapshotTries int
	noDeadline                        bool // an Append or Snapshot came without a deadline
}

var _ Journal = (*fakeJournal)(nil)

func (f *fakeJournal) Append(ctx context.Context, ops []Op) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		f.noDeadline = true
	}
	if f.appendErr != nil {
		return f.appendErr
	}
	f.entries = append(f.entries, ops)
	f.appends++
	return nil
}

func (f *fakeJournal) Replay(ctx context.Context, apply func(ops []Op) error) error {
	f.mu.Lock()
	var all [][]Op
	if f.hasSnap {
		all = append(all, f.snap)
	}
	all = append(all, f.entries...)
	replayErr := f.replayErr
	f.mu.Unlock()
	for _, ops := range all {
		if err := apply(ops); err != nil {
			return err
		}
	}
	return replayErr
}

func (f *fakeJournal) Snapshot(ctx context.Context, ops []Op) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		f.noDeadline = true
	}
	f.snapshotTries++
	if f.snapshotErr != nil {
		return f.snapshotErr
	}
	f.snap, f.hasSnap, f.entries = ops, true, nil
	f.snapshots++
	return nil
}

func (f *fakeJournal) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

// set changes the fake's behaviour under its lock.
func (f *fakeJournal) set(fn func(f *fakeJournal)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// counts returns appends, snapshots and snapshot attempts so far.
func (f *fakeJournal) counts() (appends, snapshots, tries int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.appends, f.snapshots, f.snapshotTries
}

// lastEntry is the last entry appended since the last snapshot.
func (f *fakeJournal) lastEntry(t *testing.T) []Op {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.entries) == 0 {
		t.Fatal("the journal holds no entry")
	}
	return f.entries[len(f.entries)-1]
}

var errJournalDown = errors.New("journal down")

// journalFixture is a journal and a secrets key shared by the stores of a
// test, as by the hosts of a swarm.
type journalFixture struct {
	dir, keyFile string
	j            *fakeJournal
	n            int
}

func newJournalFixture(t *testing.T) *journalFixture {
	dir := t.TempDir()
	return &journalFixture{dir: dir, keyFile: filepath.Join(dir, SecretKeyFile), j: &fakeJournal{}}
}

// open opens a journaled store on a state file of its own, as a daemon on
// another host would.
func (f *journalFixture) open(t *testing.T, opts ...JournalOption) *Bolt {
	t.Helper()
	f.n++
	s, err := OpenJournaled(context.Background(), filepath.Join(f.dir, fmt.Sprintf("host-%d", f.n), "state.db"), f.keyFile, f.j, opts...)
	if err != nil {
		t.Fatalf("OpenJournaled: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// rawState is every bucket's records and sequence, byte for byte.
func rawState(t *testing.T, s *Bolt) []Op {
	t.Helper()
	var ops []Op
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		ops, err = stateOps(tx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// storeView is what the Store's API shows of its state.
type storeView struct {
	Functions  []Function
	Namespaces []types.FunctionNamespace
	Secrets    []Secret // with values
	Calls      []Call
	Payloads   map[string]CallPayload
}

func viewOf(t *testing.T, s Store) storeView {
	t.Helper()
	ctx := context.Background()
	var v storeView
	var err error
	if v.Functions, err = s.List(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if v.Namespaces, err = s.ListNamespaces(ctx); err != nil {
		t.Fatal(err)
	}
	infos, err := s.ListSecrets(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		sec, err := s.GetSecret(ctx, info.Namespace, info.Name)
		if err != nil {
			t.Fatal(err)
		}
		v.Secrets = append(v.Secrets, sec)
	}
	if v.Calls, err = s.ListCalls(ctx); err != nil {
		t.Fatal(err)
	}
	v.Payloads = make(map[string]CallPayload)
	for _, c := range v.Calls {
		switch p, err := s.GetCallPayload(ctx, c.ID); {
		case err == nil:
			v.Payloads[c.ID] = p
		case !errors.Is(err, ErrNotFound):
			t.Fatal(err)
		}
	}
	return v
}

// assertReplays checks that a store rebuilt from the journal, on another
// state file, holds exactly what s holds, and that rebuilding appended
// nothing.
func assertReplays(t *testing.T, f *journalFixture, s *Bolt) *Bolt {
	t.Helper()
	appends, snapshots, _ := f.j.counts()
	length := f.j.Len()
	r := f.open(t)
	if a, sn, _ := f.j.counts(); a != appends || sn != snapshots || f.j.Len() != length {
		t.Errorf("replay wrote to the journal: appends %d→%d, snapshots %d→%d, len %d→%d", appends, a, snapshots, sn, length, f.j.Len())
	}
	if got, want := rawState(t, r), rawState(t, s); !reflect.DeepEqual(got, want) {
		t.Errorf("replayed state file differs:\n got %s\nwant %s", formatOps(got), formatOps(want))
	}
	if got, want := viewOf(t, r), viewOf(t, s); !reflect.DeepEqual(got, want) {
		t.Errorf("replayed store differs:\n got %+v\nwant %+v", got, want)
	}
	if err := r.Check(); err != nil {
		t.Errorf("Check of the replayed store: %v", err)
	}
	return r
}

func formatOps(ops []Op) string {
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, "\n  %s %s %q seq=%d %s", op.Kind, op.Bucket, op.Key, op.Seq, op.Value)
	}
	return b.String()
}

// must(v, err)(t) is v, failing t on err: a write whose result the test
// needs (or only needs to succeed), on one line.
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func jspec(ns, name, image string) types.FunctionDeployment {
	return types.FunctionDeployment{Service: name, Namespace: ns, Image: image,
		EnvVars: map[string]string{"a": "1"}, Labels: &map[string]string{"team": "x"}}
}

// keep is a clamp that keeps the replicas.
func keep(n uint64) uint64 { return n }

// TestJournalReplay: writes of every kind, journaled, replayed into a fresh
// state file give the same state; each write that changes something is one
// entry, and one that changes nothing appends nothing.
func TestJournalReplay(t *testing.T) {
	errRefused := errors.New("refused")
	tests := []struct {
		name    string
		writes  func(t *testing.T, s *Bolt)
		appends int
	}{
		{"functions", func(t *testing.T, s *Bolt) {
			ctx := t.Context()
			must(s.CreateNamespace(ctx, types.FunctionNamespace{Name: "dev"}))(t)                  // 1
			must(s.Create(ctx, jspec("", "a", "img:1"), 1))(t)                                     // 2
			must(s.Create(ctx, jspec("dev", "b", "img:1"), 2))(t)                                  // 3
			must(s.Update(ctx, jspec("", "a", "img:2"), keep))(t)                                  // 4
			must(s.Update(ctx, jspec("", "a", "img:2"), keep))(t)                                  // no-op
			must(s.Scale(ctx, Key(DefaultNamespace, "a"), 3))(t)                                   // 5
			must(s.Scale(ctx, Key(DefaultNamespace, "a"), 3))(t)                                   // no-op
			must(s.ScaleBy(ctx, Key("dev", "b"), 0, ScaledByIdler))(t)                             // 6
			mustOK(t, s.Delete(ctx, Key("dev", "b")))                                              // 7
			if _, err := s.Create(ctx, jspec("", "a", "img:3"), 1); !errors.Is(err, ErrConflict) { // fails
				t.Fatalf("Create of an existing function = %v", err)
			}
		}, 7},
		{"secrets", func(t *testing.T, s *Bolt) {
			ctx := t.Context()
			must(s.CreateSecret(ctx, "", "one", []byte("v1")))(t)                    // 1
			must(s.UpdateSecret(ctx, "", "one", []byte("v2")))(t)                    // 2
			must(s.UpdateSecret(ctx, "", "one", []byte("v2")))(t)                    // no-op
			must(s.CreateSecret(ctx, "", "two", []byte("v3")))(t)                    // 3
			must(s.CreateSecret(ctx, "", "three", []byte{}))(t)                      // 4
			mustOK(t, s.DeleteSecret(ctx, "", "two"))                                // 5
			if err := s.DeleteSecret(ctx, "", "two"); !errors.Is(err, ErrNotFound) { // fails
				t.Fatalf("DeleteSecret of a missing secret = %v", err)
			}
		}, 5},
		{"namespaces", func(t *testing.T, s *Bolt) {
			ctx := t.Context()
			must(s.CreateNamespace(ctx, types.FunctionNamespace{Name: "dev", Labels: map[string]string{"a": "b"}}))(t)      // 1
			must(s.UpdateNamespace(ctx, types.FunctionNamespace{Name: "dev", Annotations: map[string]string{"c": "d"}}))(t) // 2
			must(s.CreateNamespace(ctx, types.FunctionNamespace{Name: "tmp"}))(t)                                           // 3
			must(s.CreateSecret(ctx, "tmp", "s", []byte("x")))(t)                                                           // 4
			if err := s.DeleteNamespace(ctx, "tmp"); !errors.Is(err, ErrNotEmpty) {                                         // fails
				t.Fatalf("DeleteNamespace of a namespace with a secret = %v", err)
			}
			mustOK(t, s.DeleteSecret(ctx, "tmp", "s")) // 5
			mustOK(t, s.DeleteNamespace(ctx, "tmp"))   // 6
		}, 6},
		{"calls", func(t *testing.T, s *Bolt) {
			ctx := t.Context()
			must(s.Create(ctx, jspec("", "fn", "img"), 1))(t) // 1
			fn := Key(DefaultNamespace, "fn")
			for _, id := range []string{"c1", "c2", "c3"} { // 2, 3, 4
				if _, _, err := s.AcceptCall(ctx, groupCall(id, fn), groupPayload(id)); err != nil {
					t.Fatal(err)
				}
			}
			if _, dup, err := s.AcceptCall(ctx, groupCall("c1", fn), CallPayload{}); err != nil || !dup { // no-op
				t.Fatalf("duplicate AcceptCall = dup %v, %v", dup, err)
			}
			must(s.UpdateCall(ctx, "c1", func(c *Call) (PayloadChange, error) { // 5
				c.State, c.Callback = CallSucceeded, CallbackPending
				return PayloadChange{Set: &CallPayload{Result: &CallResult{Code: 200, Body: []byte("out")}}}, nil
			}))(t)
			must(s.UpdateCall(ctx, "c2", func(c *Call) (PayloadChange, error) { // 6
				c.State, c.LastCode = CallFailed, 500
				return PayloadChange{Drop: true}, nil
			}))(t)
			if _, err := s.UpdateCall(ctx, "c3", func(c *Call) (PayloadChange, error) { // fails
				c.LastError = "must not be stored"
				return PayloadChange{Drop: true}, errRefused
			}); !errors.Is(err, errRefused) {
				t.Fatalf("failing UpdateCall = %v", err)
			}
			mustOK(t, s.DeleteCalls(ctx, []string{"c2", "missing"})) // 7
			mustOK(t, s.DeleteCalls(ctx, []string{"missing"}))       // no-op
		}, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newJournalFixture(t)
			s := f.open(t)
			tc.writes(t, s)
			if appends, _, _ := f.j.counts(); appends != tc.appends {
				t.Errorf("%d entries appended, want %d (one per write that changed something)", appends, tc.appends)
			}
			r := assertReplays(t, f, s)
			// The rebuilt store goes on where s stopped, journaled.
			before := f.j.Len()
			fresh := must(r.Create(t.Context(), jspec("", "after-replay", "img"), 1))(t)
			if f.j.Len() != before+1 {
				t.Errorf("a write after replay appended %d entries, want 1", f.j.Len()-before)
			}
			var rev uint64 // the functions bucket's sequence in s
			for _, op := range rawState(t, s) {
				if op.Kind == OpSequence && op.Bucket == string(functionRecords.name) {
					rev = op.Seq
				}
			}
			if fresh.Revision != rev+1 {
				t.Errorf("revision of the first write after replay = %d, want %d", fresh.Revision, rev+1)
			}
			if f.j.noDeadline {
				t.Error("the journal was called without a deadline")
			}
		})
	}
}

// TestJournalOps: each kind of write records its ops in order, with the new
// value of a bucket's sequence and the bytes stored.
func TestJournalOps(t *testing.T) {
	fnKey := []byte(Key(DefaultNamespace, "a"))
	tests := []struct {
		name  string
		write func(ctx context.Context, s *Bolt) error
		want  []Op // values are checked against the file, not here
	}{
		{"create", func(ctx context.Context, s *Bolt) error {
			_, err := s.Create(ctx, jspec("", "a", "img"), 1)
			return err
		}, []Op{{Kind: OpSequence, Bucket: "functions", Seq: 2}, {Kind: OpPut, Bucket: "functions", Key: fnKey}}},
		{"delete", func(ctx context.Context, s *Bolt) error {
			return s.Delete(ctx, string(fnKey))
		}, []Op{{Kind: OpDelete, Bucket: "functions", Key: fnKey}, {Kind: OpSequence, Bucket: "functions", Seq: 2}}},
		{"accept", func(ctx context.Context, s *Bolt) error {
			_, _, err := s.AcceptCall(ctx, groupCall("c1", Key(DefaultNamespace, "seed")), groupPayload("c1"))
			return err
		}, []Op{
			{Kind: OpSequence, Bucket: "calls", Seq: 1},
			{Kind: OpPut, Bucket: "callPayloads", Key: []byte("c1")},
			{Kind: OpPut, Bucket: "calls", Key: []byte("c1")},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newJournalFixture(t)
			s := f.open(t)
			// Revision 1: the function "delete" deletes, or one that
			// "accept" calls.
			switch tc.name {
			case "delete":
				must(s.Create(t.Context(), jspec("", "a", "img"), 1))(t)
			default:
				must(s.Create(t.Context(), jspec("", "seed", "img"), 1))(t)
			}
			mustOK(t, tc.write(t.Context(), s))
			got := f.j.lastEntry(t)
			if len(got) != len(tc.want) {
				t.Fatalf("ops = %s, want %d", formatOps(got), len(tc.want))
			}
			for i, want := range tc.want {
				g := got[i]
				if g.Kind != want.Kind || g.Bucket != want.Bucket || !bytes.Equal(g.Key, want.Key) || g.Seq != want.Seq {
					t.Errorf("op %d = %s %s %q %d, want %s %s %q %d", i, g.Kind, g.Bucket, g.Key, g.Seq, want.Kind, want.Bucket, want.Key, want.Seq)
				}
				if g.Kind == OpPut {
					var stored []byte
					_ = s.db.View(func(tx *bolt.Tx) error {
						stored = bytes.Clone(tx.Bucket([]byte(g.Bucket)).Get(g.Key))
						return nil
					})
					if !bytes.Equal(g.Value, stored) {
						t.Errorf("op %d value = %s, the file holds %s", i, g.Value, stored)
					}
				}
			}
		})
	}
}

// TestJournalGroupCommit: grouped writes are journaled once per commit,
// with the ops of the members that committed and none of a failed one's.
func TestJournalGroupCommit(t *testing.T) {
	t.Run("concurrent", func(t *testing.T) {
		f := newJournalFixture(t)
		s := f.open(t)
		createGroupFunctions(t, s)
		const n = 48
		var wg sync.WaitGroup
		errs := make(chan error, 3*n)
		start := make(chan struct{})
		for i := range n {
			id := fmt.Sprintf("c%02d", i)
			wg.Go(func() {
				<-start
				if _, _, err := s.AcceptCall(t.Context(), groupCall(id, groupFn), groupPayload(id)); err != nil {
					errs <- err
					return
				}
				if _, err := s.UpdateCall(t.Context(), id, func(c *Call) (PayloadChange, error) {
					c.State = CallRunning
					return PayloadChange{}, nil
				}); err != nil {
					errs <- err
				}
				if i%3 == 0 {
					if err := s.DeleteCalls(t.Context(), []string{id}); err != nil {
						errs <- err
					}
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		appends, _, _ := f.j.counts()
		t.Logf("%d grouped writes in %d entries", 2*n+n/3, appends-2)
		assertReplays(t, f, s)
	})

	t.Run("failing member", func(t *testing.T) {
		f := newJournalFixture(t)
		s := f.open(t)
		createGroupFunctions(t, s)
		ctx := t.Context()
		if _, _, err := s.AcceptCall(ctx, groupCall("old", groupFn), groupPayload("old")); err != nil {
			t.Fatal(err)
		}
		g := s.kv.(boltKV).group
		_, release := blockCommitter(t, g)
		errRefused := errors.New("refused")
		type result struct {
			name string
			err  error
		}
		results := make(chan result, 8)
		writes := map[string]func() error{
			"accept new1": func() error {
				_, _, err := s.AcceptCall(ctx, groupCall("new1", groupFn), groupPayload("new1"))
				return err
			},
			"failing update": func() error {
				_, err := s.UpdateCall(ctx, "old", func(c *Call) (PayloadChange, error) {
					c.LastError = "must not be stored"
					return PayloadChange{Drop: true}, errRefused
				})
				return err
			},
			"raw write, then failure": func() error {
				// Writes before failing, so its ops are in the attempt it
				// fails: they must go with that attempt.
				return s.kv.batch(func(kt kvTx) error {
					if err := kt.bucket(callRecords.name).Put([]byte("ghost"), []byte(`{"id":"ghost"}`)); err != nil {
						return err
					}
					return errRefused
				})
			},
			"duplicate": func() error {
				_, _, err := s.AcceptCall(ctx, groupCall("old", groupFn), CallPayload{})
				return err
			},
			"update old": func() error {
				_, err := s.UpdateCall(ctx, "old", func(c *Call) (PayloadChange, error) {
					c.Attempts = 1
					return PayloadChange{}, nil
				})
				return err
			},
			"accept new2": func() error {
				_, _, err := s.AcceptCall(ctx, groupCall("new2", groupOtherFn), groupPayload("new2"))
				return err
			},
		}
		for name, w := range writes {
			go func() { results <- result{name, w()} }()
		}
		waitPending(t, g, len(writes))
		before, _, _ := f.j.counts()
		release()
		for range writes {
			r := <-results
			switch {
			case strings.Contains(r.name, "fail"):
				if !errors.Is(r.err, errRefused) {
					t.Errorf("%s = %v, want errRefused", r.name, r.err)
				}
			case r.err != nil:
				t.Errorf("%s: %v", r.name, r.err)
			}
		}
		// Nothing else runs, so the group is complete once all answered.
		if appends, _, _ := f.j.counts(); appends != before+1 {
			t.Errorf("the group appended %d entries, want 1", appends-before)
		}
		for _, op := range f.j.lastEntry(t) {
			if bytes.Contains(op.Value, []byte("must not be stored")) || string(op.Key) == "ghost" || (op.Kind == OpDelete && string(op.Key) == "old") {
				t.Errorf("the failed member's op %s %s %q was journaled", op.Kind, op.Bucket, op.Key)
			}
		}
		c := must(s.GetCall(ctx, "old"))(t)
		if c.Attempts != 1 || c.LastError != "" {
			t.Errorf("old = %+v, want the update applied and nothing of the failed one", c)
		}
		assertReplays(t, f, s)
	})
}

// TestJournalAppendFails: a write the journal cannot keep fails with
// ErrNotJournaled, leaves the state file as it was and wakes no one; once
// the journal is back, the next write also snapshots, so that an entry the
// failed Append may have kept after all is dropped.
func TestJournalAppendFails(t *testing.T) {
	tests := []struct {
		name  string
		write func(ctx context.Context, s *Bolt) error
	}{
		{"create function", func(ctx context.Context, s *Bolt) error {
			_, err := s.Create(ctx, jspec("", "new", "img"), 1)
			return err
		}},
		{"scale", func(ctx context.Context, s *Bolt) error {
			_, err := s.Scale(ctx, groupFn, 5)
			return err
		}},
		{"delete function", func(ctx context.Context, s *Bolt) error {
			return s.Delete(ctx, groupOtherFn)
		}},
		{"create secret", func(ctx context.Context, s *Bolt) error {
			_, err := s.CreateSecret(ctx, "", "new", []byte("value"))
			return err
		}},
		{"create namespace", func(ctx context.Context, s *Bolt) error {
			_, err := s.CreateNamespace(ctx, types.FunctionNamespace{Name: "dev"})
			return err
		}},
		{"accept call", func(ctx context.Context, s *Bolt) error {
			_, _, err := s.AcceptCall(ctx, groupCall("new", groupFn), groupPayload("new"))
			return err
		}},
		{"update call", func(ctx context.Context, s *Bolt) error {
			_, err := s.UpdateCall(ctx, "old", func(c *Call) (PayloadChange, error) {
				c.State = CallRunning
				return PayloadChange{}, nil
			})
			return err
		}},
		{"delete calls", func(ctx context.Context, s *Bolt) error {
			return s.DeleteCalls(ctx, []string{"old"})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newJournalFixture(t)
			s := f.open(t)
			ctx := t.Context()
			createGroupFunctions(t, s)
			if _, _, err := s.AcceptCall(ctx, groupCall("old", groupFn), groupPayload("old")); err != nil {
				t.Fatal(err)
			}
			w := s.Watch(ctx)
			before := rawState(t, s)
			f.j.set(func(f *fakeJournal) { f.appendErr = errJournalDown })
			err := tc.write(ctx, s)
			if !errors.Is(err, ErrNotJournaled) || !errors.Is(err, errJournalDown) {
				t.Fatalf("write with the journal down = %v, want ErrNotJournaled wrapping its error", err)
			}
			if !strings.Contains(err.Error(), "not acknowledged") {
				t.Errorf("error %q does not say the write was not acknowledged", err)
			}
			if after := rawState(t, s); !reflect.DeepEqual(after, before) {
				t.Errorf("a write the journal refused changed the state file:\n got %s\nwant %s", formatOps(after), formatOps(before))
			}
			if keys := w.drain(); len(keys) != 0 { // notified before the write returns
				t.Error("a write the journal refused woke watchers")
			}
			f.j.set(func(f *fakeJournal) { f.appendErr = nil })
			mustOK(t, tc.write(ctx, s))
			if _, snapshots, _ := f.j.counts(); snapshots != 1 {
				t.Errorf("%d snapshots after the journal came back, want 1", snapshots)
			}
			assertReplays(t, f, s)
		})
	}

	t.Run("group", func(t *testing.T) {
		f := newJournalFixture(t)
		s := f.open(t)
		ctx := t.Context()
		createGroupFunctions(t, s)
		before := rawState(t, s)
		g := s.kv.(boltKV).group
		_, release := blockCommitter(t, g)
		f.j.set(func(f *fakeJournal) { f.appendErr = errJournalDown })
		const n = 4
		errs := make(chan error, n)
		for i := range n {
			id := fmt.Sprintf("g%d", i)
			go func() {
				_, _, err := s.AcceptCall(ctx, groupCall(id, groupFn), groupPayload(id))
				errs <- err
			}()
		}
		waitPending(t, g, n)
		release()
		for range n {
			if err := <-errs; !errors.Is(err, ErrNotJournaled) {
				t.Errorf("a member of a group the journal refused = %v, want ErrNotJournaled", err)
			}
		}
		if after := rawState(t, s); !reflect.DeepEqual(after, before) {
			t.Errorf("a group the journal refused changed the state file:\n got %s\nwant %s", formatOps(after), formatOps(before))
		}
	})
}

// TestJournalSnapshot: past the bound the journal is snapshotted, within
// the write that crossed it; later writes go on as entries, and a replay of
// snapshot plus entries gives the same state.
func TestJournalSnapshot(t *testing.T) {
	for _, bound := range []int{0, 1, 4, DefaultSnapshotAfter} {
		t.Run(fmt.Sprint(bound), func(t *testing.T) {
			f := newJournalFixture(t)
			var opts []JournalOption
			if bound != DefaultSnapshotAfter {
				opts = append(opts, SnapshotAfter(bound))
			}
			s := f.open(t, opts...)
			ctx := t.Context()
			writes := 0
			for i := range 6 {
				name := fmt.Sprintf("fn-%d", i)
				must(s.Create(ctx, jspec("", name, "img"), 1))(t)
				must(s.CreateSecret(ctx, "", name, []byte("value of "+name)))(t)
				if _, _, err := s.AcceptCall(ctx, groupCall("call-"+name, Key(DefaultNamespace, name)), groupPayload(name)); err != nil {
					t.Fatal(err)
				}
				writes += 3
				if l := f.j.Len(); l > bound {
					t.Fatalf("journal holds %d entries past its snapshot, bound %d", l, bound)
				}
			}
			appends, snapshots, _ := f.j.counts()
			if want := appends / (bound + 1); snapshots != want {
				t.Errorf("%d snapshots after %d appends, want %d", snapshots, appends, want)
			}
			assertReplays(t, f, s)
			// More writes after the snapshot: deletes, updates.
			mustOK(t, s.Delete(ctx, Key(DefaultNamespace, "fn-5")))
			must(s.UpdateSecret(ctx, "", "fn-1", []byte("new value")))(t)
			mustOK(t, s.DeleteSecret(ctx, "", "fn-2"))
			must(s.UpdateCall(ctx, "call-fn-0", func(c *Call) (PayloadChange, error) {
				c.State = CallSucceeded
				return PayloadChange{Drop: true}, nil
			}))(t)
			assertReplays(t, f, s)
		})
	}
}

// TestJournalSnapshotFails: a failed snapshot fails no write (the entries
// hold it), is logged at warn without secret values, and is retried at the
// next append until it succeeds.
func TestJournalSnapshotFails(t *testing.T) {
	f := newJournalFixture(t)
	log, hook := logtest.NewNullLogger()
	s := f.open(t, SnapshotAfter(2), JournalLogger(log))
	ctx := t.Context()
	f.j.set(func(f *fakeJournal) { f.snapshotErr = errors.New("config too large") })
	const secretValue = "hunter2-plaintext"
	for i := range 6 {
		if _, err := s.CreateSecret(ctx, "", fmt.Sprintf("s%d", i), []byte(secretValue)); err != nil {
			t.Fatalf("write %d with snapshots failing: %v", i, err)
		}
	}
	// Appends 3 to 6 each find the journal past 2 entries.
	if _, snapshots, tries := f.j.counts(); snapshots != 0 || tries != 4 {
		t.Errorf("%d snapshots in %d tries, want 0 in 4", snapshots, tries)
	}
	if got := len(hook.AllEntries()); got != 4 {
		t.Errorf("%d log entries, want 4", got)
	}
	for _, e := range hook.AllEntries() {
		line, err := e.String()
		if err != nil {
			t.Fatal(err)
		}
		if e.Level != logrus.WarnLevel {
			t.Errorf("logged at %s, want warn: %s", e.Level, line)
		}
		if !strings.Contains(line, "config too large") || !strings.Contains(line, "snapshot") {
			t.Errorf("log entry does not say what failed: %s", line)
		}
		if strings.Contains(line, secretValue) {
			t.Errorf("log entry holds a secret value: %s", line)
		}
	}
	assertReplays(t, f, s) // from the 6 entries

	f.j.set(func(f *fakeJournal) { f.snapshotErr = nil })
	must(s.CreateSecret(ctx, "", "s6", []byte(secretValue)))(t)
	if _, snapshots, _ := f.j.counts(); snapshots != 1 || f.j.Len() != 0 {
		t.Errorf("%d snapshots, journal length %d after the journal recovered; want 1, 0", snapshots, f.j.Len())
	}
	must(s.UpdateSecret(ctx, "", "s0", []byte("other")))(t)
	assertReplays(t, f, s)
}

// TestOpenJournaledDiscardsFile: whatever the state file held, the journal
// alone decides the state; a file another daemon holds is left alone.
func TestOpenJournaledDiscardsFile(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
	}{
		{"no file", func(t *testing.T, path string) {}},
		{"stale state", func(t *testing.T, path string) {
			old, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			must(old.Create(t.Context(), jspec("", "stale", "img"), 1))(t)
			must(old.CreateNamespace(t.Context(), types.FunctionNamespace{Name: "stale"}))(t)
			mustOK(t, old.Close())
		}},
		{"unsupported schema", func(t *testing.T, path string) {
			old, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			mustOK(t, old.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Put(schemaKey, []byte("99")) }))
			mustOK(t, old.Close())
		}},
		{"not a state file", func(t *testing.T, path string) {
			mustOK(t, os.MkdirAll(filepath.Dir(path), 0o700))
			mustOK(t, os.WriteFile(path, bytes.Repeat([]byte("garbage!"), 1024), 0o600))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newJournalFixture(t)
			first := f.open(t)
			must(first.Create(t.Context(), jspec("", "kept", "img"), 1))(t)
			path := filepath.Join(t.TempDir(), "state.db")
			tc.prepare(t, path)
			s, err := OpenJournaled(t.Context(), path, f.keyFile, f.j)
			if err != nil {
				t.Fatalf("OpenJournaled: %v", err)
			}
			defer s.Close()
			if got, want := viewOf(t, s), viewOf(t, first); !reflect.DeepEqual(got, want) {
				t.Errorf("state = %+v, want the journal's %+v", got, want)
			}
			if got, want := rawState(t, s), rawState(t, first); !reflect.DeepEqual(got, want) {
				t.Errorf("state file = %s, want %s", formatOps(got), formatOps(want))
			}
		})
	}

	t.Run("locked", func(t *testing.T) {
		f := newJournalFixture(t)
		path := filepath.Join(t.TempDir(), "state.db")
		other, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		must(other.Create(t.Context(), jspec("", "theirs", "img"), 1))(t)
		_, err = openJournaled(t.Context(), path, f.keyFile, f.j, 50*time.Millisecond, nil)
		if !errors.Is(err, berrors.ErrTimeout) {
			t.Fatalf("OpenJournaled of a locked file = %v, want a lock timeout", err)
		}
		if _, err := other.Get(t.Context(), Key(DefaultNamespace, "theirs")); err != nil {
			t.Errorf("the other daemon's state is gone: %v", err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("the locked file was removed: %v", err)
		}
	})
}

// TestOpenJournaledSecretsKey: secrets replay only with the key that sealed
// them; a missing key file is not silently replaced.
func TestOpenJournaledSecretsKey(t *testing.T) {
	f := newJournalFixture(t)
	s := f.open(t)
	must(s.CreateSecret(t.Context(), "", "api", []byte("value")))(t)
	dir := t.TempDir()

	t.Run("missing key file", func(t *testing.T) {
		keyFile := filepath.Join(dir, "missing.key")
		_, err := OpenJournaled(t.Context(), filepath.Join(dir, "a", "state.db"), keyFile, f.j)
		if err == nil || !strings.Contains(err.Error(), "restore the original key file") {
			t.Fatalf("OpenJournaled with a new key = %v, want it refused", err)
		}
		if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a key was left behind at %s: %v", keyFile, err)
		}
	})
	t.Run("other key", func(t *testing.T) {
		keyFile := filepath.Join(dir, "other.key")
		if _, _, err := loadOrCreateKey(keyFile); err != nil {
			t.Fatal(err)
		}
		_, err := OpenJournaled(t.Context(), filepath.Join(dir, "b", "state.db"), keyFile, f.j)
		if err == nil || !strings.Contains(err.Error(), "did not encrypt the stored secrets") {
			t.Fatalf("OpenJournaled with another key = %v, want it refused", err)
		}
	})
	t.Run("same key", func(t *testing.T) {
		r := assertReplays(t, f, s)
		if sec := must(r.GetSecret(t.Context(), "", "api"))(t); string(sec.Value) != "value" {
			t.Errorf("replayed secret value = %q", sec.Value)
		}
	})
}

// TestOpenJournaledBadJournal: a journal that cannot be replayed fails the
// open instead of leaving a partial state.
func TestOpenJournaledBadJournal(t *testing.T) {
	errBroken := errors.New("broken journal")
	good := Op{Kind: OpPut, Bucket: "namespaces", Key: []byte("dev"), Value: []byte(`{"name":"dev"}`)}
	tests := []struct {
		name      string
		ops       []Op
		replayErr error
		want      string
	}{
		{"unknown bucket", []Op{good, {Kind: OpPut, Bucket: "future", Key: []byte("k"), Value: []byte("v")}}, nil, `unknown bucket "future"`},
		{"meta bucket", []Op{{Kind: OpPut, Bucket: "meta", Key: []byte("schema"), Value: []byte("99")}}, nil, `unknown bucket "meta"`},
		{"unknown op", []Op{{Kind: "truncate", Bucket: "functions"}}, nil, `unknown op "truncate"`},
		{"empty key", []Op{{Kind: OpPut, Bucket: "functions", Value: []byte("{}")}}, nil, "key required"},
		{"replay error", []Op{good}, errBroken, "broken journal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := &fakeJournal{entries: [][]Op{tc.ops}, replayErr: tc.replayErr}
			dir := t.TempDir()
			_, err := OpenJournaled(t.Context(), filepath.Join(dir, "state.db"), filepath.Join(dir, "key"), j)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenJournaled = %v, want an error about %s", err, tc.want)
			}
			if tc.replayErr != nil && !errors.Is(err, tc.replayErr) {
				t.Errorf("error %v does not wrap the journal's", err)
			}
		})
	}
	t.Run("no journal", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := OpenJournaled(t.Context(), filepath.Join(dir, "state.db"), filepath.Join(dir, "key"), nil); err == nil {
			t.Fatal("OpenJournaled without a journal succeeded")
		}
	})
}
