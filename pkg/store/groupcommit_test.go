package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	bolt "go.etcd.io/bbolt"
)

// These tests are inside the package so that they can hold the group
// committer busy and so force writes into one group, and count commits by
// bbolt transaction id (every commit, even an empty one, takes the next).

var (
	groupFn      = Key(DefaultNamespace, "fn")
	groupOtherFn = Key(DefaultNamespace, "other")
)

// openGroupBolt opens a bbolt store in tb's temp dir holding groupFn and
// groupOtherFn.
func openGroupBolt(tb testing.TB) *Bolt {
	tb.Helper()
	b, err := Open(filepath.Join(tb.TempDir(), "state.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	createGroupFunctions(tb, b)
	return b
}

func createGroupFunctions(tb testing.TB, s Store) {
	tb.Helper()
	for _, name := range []string{"fn", "other"} {
		if _, err := s.Create(context.Background(), types.FunctionDeployment{Service: name, Image: "img"}, 1); err != nil {
			tb.Fatal(err)
		}
	}
}

// groupStores are both backends (the memory one runs batches one by one).
func groupStores(t *testing.T) map[string]Store {
	t.Helper()
	m := NewMemory()
	createGroupFunctions(t, m)
	return map[string]Store{"bolt": openGroupBolt(t), "memory": m}
}

func groupCall(id, fn string) Call {
	return Call{ID: id, Function: fn, Method: http.MethodPost, Path: "/", State: CallQueued,
		AcceptedAt: time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)}
}

func groupPayload(id string) CallPayload {
	return CallPayload{Header: http.Header{"X-Call-Id": {id}}, Body: []byte("body of " + id)}
}

// lastTxID is the id of the last committed bbolt transaction.
func lastTxID(tb testing.TB, b *Bolt) int {
	tb.Helper()
	var id int
	if err := b.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		tb.Fatal(err)
	}
	return id
}

// txIDOf is the id of the bbolt transaction a group member runs in (a
// recording one when the store is journaled).
func txIDOf(kt kvTx) int {
	if jt, ok := kt.(*journalTx); ok {
		return jt.tx.ID()
	}
	return kt.(boltTx).tx.ID()
}

// pendingWrites is how many writes wait for the committer.
func pendingWrites(g *groupCommitter) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending)
}

// waitPending waits until n writes wait for the committer.
func waitPending(t *testing.T, g *groupCommitter, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for pendingWrites(g) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes pending after 20s, want %d", pendingWrites(g), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// blockCommitter starts a write that holds the committer inside its
// transaction until release is called, so that writes arriving meanwhile
// pile up into the next group. It returns the blocking write's transaction
// id, which commits, and release, which waits for that commit.
func blockCommitter(t *testing.T, g *groupCommitter) (blockerTx int, release func()) {
	t.Helper()
	entered := make(chan int, 1)
	unblock := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- g.do(func(kt kvTx) error {
			entered <- txIDOf(kt)
			<-unblock
			return nil // as if it wrote: its transaction commits
		})
	}()
	select {
	case blockerTx = <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the blocking write never ran")
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(unblock)
			if err := <-done; err != nil {
				t.Errorf("blocking write: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return blockerTx, release
}

// TestGroupConcurrentAccepts: concurrent accepts all succeed, each with its
// own Seq, and are all stored with their payloads.
func TestGroupConcurrentAccepts(t *testing.T) {
	const n = 64
	for name, s := range groupStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			var before int
			if b, ok := s.(*Bolt); ok {
				before = lastTxID(t, b)
			}
			seqs := make([]uint64, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					id := fmt.Sprintf("c%02d", i)
					c, dup, err := s.AcceptCall(ctx, groupCall(id, groupFn), groupPayload(id))
					if err == nil && dup {
						err = errors.New("dup for a new call")
					}
					seqs[i], errs[i] = c.Seq, err
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("AcceptCall c%02d: %v", i, err)
				}
			}
			sorted := slices.Sorted(slices.Values(seqs))
			for i, seq := range sorted {
				if seq != uint64(i+1) {
					t.Fatalf("Seqs = %v, want 1..%d each once", sorted, n)
				}
			}
			list, err := s.ListCalls(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != n {
				t.Fatalf("ListCalls has %d calls, want %d", len(list), n)
			}
			for i, c := range list {
				if c.Seq != uint64(i+1) {
					t.Errorf("ListCalls[%d].Seq = %d", i, c.Seq)
				}
				if want := seqs[mustIndex(t, c.ID)]; c.Seq != want {
					t.Errorf("%s stored with Seq %d, accepted with %d", c.ID, c.Seq, want)
				}
				p, err := s.GetCallPayload(ctx, c.ID)
				if err != nil {
					t.Errorf("GetCallPayload(%s): %v", c.ID, err)
				} else if want := groupPayload(c.ID); string(p.Body) != string(want.Body) || p.ID != c.ID {
					t.Errorf("payload of %s = %+v", c.ID, p)
				}
			}
			if b, ok := s.(*Bolt); ok {
				t.Logf("%d accepts in %d commits", n, lastTxID(t, b)-before)
				if err := b.Check(); err != nil {
					t.Errorf("Check: %v", err)
				}
			}
		})
	}
}

func mustIndex(t *testing.T, id string) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(id, "c%d", &i); err != nil {
		t.Fatalf("call id %q: %v", id, err)
	}
	return i
}

// TestGroupConcurrentMixed runs accepts, updates, failing updates and
// duplicate accepts of the same calls at once: each failing write fails
// alone, every other one takes effect exactly once.
func TestGroupConcurrentMixed(t *testing.T) {
	const n = 24
	errRefused := errors.New("refused")
	for name, s := range groupStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			orig := make([]Call, n)
			for i := range n {
				id := fmt.Sprintf("u%02d", i)
				c, _, err := s.AcceptCall(ctx, groupCall(id, groupFn), groupPayload(id))
				if err != nil {
					t.Fatal(err)
				}
				orig[i] = c
			}
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				errs   []error
				start  = make(chan struct{})
				report = func(format string, args ...any) {
					mu.Lock()
					defer mu.Unlock()
					errs = append(errs, fmt.Errorf(format, args...))
				}
			)
			for i := range n {
				id := fmt.Sprintf("u%02d", i)
				wg.Go(func() { // succeeds
					<-start
					c, err := s.UpdateCall(ctx, id, func(c *Call) (PayloadChange, error) {
						c.Attempts++
						c.State = CallRetrying
						return PayloadChange{}, nil
					})
					if err != nil || c.Attempts != 1 {
						report("update %s = attempts %d, %v", id, c.Attempts, err)
					}
				})
				wg.Go(func() { // fails
					<-start
					_, err := s.UpdateCall(ctx, id, func(c *Call) (PayloadChange, error) {
						c.LastError = "must not be stored"
						return PayloadChange{Drop: true}, errRefused
					})
					if !errors.Is(err, errRefused) {
						report("failing update %s = %v, want errRefused", id, err)
					}
				})
				wg.Go(func() { // duplicate
					<-start
					c, dup, err := s.AcceptCall(ctx, groupCall(id, groupFn), CallPayload{Body: []byte("other")})
					if err != nil || !dup || c.Seq != orig[i].Seq {
						report("duplicate accept %s = seq %d, dup %v, %v", id, c.Seq, dup, err)
					}
				})
				wg.Go(func() { // conflicting
					<-start
					if _, _, err := s.AcceptCall(ctx, groupCall(id, groupOtherFn), CallPayload{}); !errors.Is(err, ErrConflict) {
						report("conflicting accept %s = %v, want ErrConflict", id, err)
					}
				})
				wg.Go(func() { // new
					<-start
					nid := fmt.Sprintf("n%02d", i)
					if _, dup, err := s.AcceptCall(ctx, groupCall(nid, groupFn), groupPayload(nid)); err != nil || dup {
						report("accept %s = dup %v, %v", nid, dup, err)
					}
				})
			}
			close(start)
			wg.Wait()
			for _, err := range errs {
				t.Error(err)
			}
			list, err := s.ListCalls(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 2*n {
				t.Errorf("ListCalls has %d calls, want %d", len(list), 2*n)
			}
			for i := range n {
				id := fmt.Sprintf("u%02d", i)
				c, err := s.GetCall(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if c.Attempts != 1 || c.State != CallRetrying || c.LastError != "" || c.Seq != orig[i].Seq || c.Function != groupFn {
					t.Errorf("%s stored as %+v, want one update applied and nothing of the failed one", id, c)
				}
				p, err := s.GetCallPayload(ctx, id)
				if err != nil || string(p.Body) != "body of "+id {
					t.Errorf("payload of %s = %q, %v; want the original", id, p.Body, err)
				}
			}
			if b, ok := s.(*Bolt); ok {
				if err := b.Check(); err != nil {
					t.Errorf("Check: %v", err)
				}
			}
		})
	}
}

// TestGroupCommitOneGroup forces a crowd of writes into one group: members
// that fail (an op error, a missing call, a conflict, a raw write that
// fails after writing) are answered alone with their own error and leave no
// trace; duplicates and other no-ops (errUnchanged) roll back nobody; all
// the rest commit together, in one transaction, each applied once though
// it ran once per failure before it.
func TestGroupCommitOneGroup(t *testing.T) {
	b := openGroupBolt(t)
	g := b.kv.(boltKV).group
	ctx := t.Context()
	errBoom := errors.New("boom")
	errPartial := errors.New("failed after writing")
	for _, id := range []string{"old", "gone"} {
		if _, _, err := b.AcceptCall(ctx, groupCall(id, groupFn), groupPayload(id)); err != nil {
			t.Fatal(err)
		}
	}
	oldBefore, err := b.GetCall(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}

	var (
		runsOfUpdate atomic.Int32
		probeTx      atomic.Int64
	)
	type result struct {
		c   Call
		dup bool
		err error
	}
	accept := func(id, fn string) func() result {
		return func() result {
			c, dup, err := b.AcceptCall(ctx, groupCall(id, fn), groupPayload(id))
			return result{c, dup, err}
		}
	}
	members := []struct {
		name    string
		run     func() result
		wantErr error // nil: succeeds
		check   func(t *testing.T, r result)
	}{
		{name: "accept a1", run: accept("a1", groupFn), check: func(t *testing.T, r result) {
			if r.dup || r.c.Seq != 3 {
				t.Errorf("a1: seq %d dup %v, want seq 3", r.c.Seq, r.dup)
			}
		}},
		{name: "raw write then failure", wantErr: errPartial, run: func() result {
			return result{err: g.do(func(kt kvTx) error {
				v, _ := json.Marshal(groupCall("partial", groupFn))
				if err := kt.bucket(callRecords.name).Put([]byte("partial"), v); err != nil {
					return err
				}
				if _, err := kt.bucket(callSeq.name).NextSequence(); err != nil {
					return err
				}
				return errPartial
			})}
		}},
		{name: "update old", run: func() result {
			c, err := b.UpdateCall(ctx, "old", func(c *Call) (PayloadChange, error) {
				runsOfUpdate.Add(1)
				c.Attempts++
				c.State = CallRunning
				return PayloadChange{}, nil
			})
			return result{c: c, err: err}
		}, check: func(t *testing.T, r result) {
			if r.c.Attempts != 1 || r.c.State != CallRunning {
				t.Errorf("update old = %+v, want Attempts 1, running", r.c)
			}
		}},
		{name: "duplicate accept old", run: accept("old", groupFn), check: func(t *testing.T, r result) {
			if !r.dup || r.c.Seq != oldBefore.Seq {
				t.Errorf("duplicate old: seq %d dup %v, want seq %d dup", r.c.Seq, r.dup, oldBefore.Seq)
			}
		}},
		{name: "failing update old", wantErr: errBoom, run: func() result {
			c, err := b.UpdateCall(ctx, "old", func(c *Call) (PayloadChange, error) {
				c.LastError = "must not be stored"
				return PayloadChange{Set: &CallPayload{Body: []byte("must not be stored")}}, errBoom
			})
			return result{c: c, err: err}
		}},
		{name: "accept a2", run: accept("a2", groupFn), check: func(t *testing.T, r result) {
			if r.dup || r.c.Seq != 4 {
				t.Errorf("a2: seq %d dup %v, want seq 4", r.c.Seq, r.dup)
			}
		}},
		{name: "update missing", wantErr: ErrNotFound, run: func() result {
			c, err := b.UpdateCall(ctx, "missing", func(c *Call) (PayloadChange, error) { return PayloadChange{}, nil })
			return result{c: c, err: err}
		}},
		{name: "raw no-op probe", wantErr: errUnchanged, run: func() result {
			return result{err: g.do(func(kt kvTx) error {
				probeTx.Store(int64(txIDOf(kt)))
				return errUnchanged
			})}
		}},
		{name: "accept a1 for another function", wantErr: ErrConflict, run: accept("a1", groupOtherFn)},
		{name: "accept for an unknown function", wantErr: ErrNotFound, run: accept("a9", Key(DefaultNamespace, "nope"))},
		{name: "delete gone", run: func() result { return result{err: b.DeleteCalls(ctx, []string{"gone", "never"})} }},
		{name: "accept a3", run: accept("a3", groupFn), check: func(t *testing.T, r result) {
			if r.dup || r.c.Seq != 5 {
				t.Errorf("a3: seq %d dup %v, want seq 5", r.c.Seq, r.dup)
			}
		}},
	}

	blockerTx, release := blockCommitter(t, g)
	results := make([]result, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() { results[i] = m.run() })
		waitPending(t, g, i+1) // in this order
	}
	release()
	wg.Wait()

	for i, m := range members {
		r := results[i]
		switch {
		case m.wantErr == nil && r.err != nil:
			t.Errorf("%s: %v", m.name, r.err)
		case m.wantErr != nil && !errors.Is(r.err, m.wantErr):
			t.Errorf("%s = %v, want %v", m.name, r.err, m.wantErr)
		case m.check != nil:
			m.check(t, r)
		}
	}

	// One commit for the whole group, right after the blocking write's:
	// the retries after each failure were rolled back, not committed.
	if got := probeTx.Load(); got != int64(blockerTx+1) {
		t.Errorf("the group ran last in transaction %d, want %d (right after the blocking write)", got, blockerTx+1)
	}
	if got := lastTxID(t, b); got != blockerTx+1 {
		t.Errorf("last committed transaction %d, want %d: the group took %d commits", got, blockerTx+1, got-blockerTx)
	}
	// A member before a failure ran again, but is applied once.
	if n := runsOfUpdate.Load(); n < 2 {
		t.Errorf("update old ran %d times, want it rerun after the failures behind it", n)
	}

	list, err := b.ListCalls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := []string{"old", "a1", "a2", "a3"}
	gotIDs := make([]string, len(list))
	for i, c := range list {
		gotIDs[i] = c.ID
	}
	if !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("stored calls %v, want %v", gotIDs, wantIDs)
	}
	old, err := b.GetCall(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if old.Attempts != 1 || old.State != CallRunning || old.LastError != "" || old.Seq != oldBefore.Seq {
		t.Errorf("old stored as %+v, want the one update applied once", old)
	}
	if p, err := b.GetCallPayload(ctx, "old"); err != nil || !bytes.Equal(p.Body, groupPayload("old").Body) {
		t.Errorf("payload of old = %q, %v; want the original", p.Body, err)
	}
	for _, id := range []string{"partial", "gone", "a9"} {
		if _, err := b.GetCall(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetCall(%s) = %v, want ErrNotFound", id, err)
		}
	}
	if err := b.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// TestGroupCommitLargeCrowd: more writes than maxGroup waiting at once
// are committed in as few groups as maxGroup allows, and all succeed.
func TestGroupCommitLargeCrowd(t *testing.T) {
	const n = maxGroup + 88
	b := openGroupBolt(t)
	g := b.kv.(boltKV).group
	ctx := t.Context()

	blockerTx, release := blockCommitter(t, g)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("c%04d", i)
			_, _, errs[i] = b.AcceptCall(ctx, groupCall(id, groupFn), groupPayload(id))
		})
	}
	waitPending(t, g, n)
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("AcceptCall c%04d: %v", i, err)
		}
	}
	if got, want := lastTxID(t, b)-blockerTx, (n+maxGroup-1)/maxGroup; got != want {
		t.Errorf("%d accepts took %d commits, want %d", n, got, want)
	}
	list, err := b.ListCalls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Fatalf("ListCalls has %d calls, want %d", len(list), n)
	}
	for i, c := range list {
		if c.Seq != uint64(i+1) {
			t.Fatalf("ListCalls[%d].Seq = %d, want %d", i, c.Seq, i+1)
		}
	}
}

// TestGroupCommitNoOpsCommitNothing: writes that change nothing
// (duplicate accepts, deleting absent calls), alone or grouped together,
// roll back instead of committing: no meta page written, no fsync.
func TestGroupCommitNoOpsCommitNothing(t *testing.T) {
	b := openGroupBolt(t)
	g := b.kv.(boltKV).group
	ctx := t.Context()
	if _, _, err := b.AcceptCall(ctx, groupCall("c", groupFn), groupPayload("c")); err != nil {
		t.Fatal(err)
	}
	noops := []struct {
		name string
		run  func() error
	}{
		{"duplicate accept", func() error {
			_, dup, err := b.AcceptCall(ctx, groupCall("c", groupFn), groupPayload("c"))
			if err == nil && !dup {
				err = errors.New("not reported as a duplicate")
			}
			return err
		}},
		{"delete absent", func() error { return b.DeleteCalls(ctx, []string{"x", "y"}) }},
		{"delete nothing", func() error { return b.DeleteCalls(ctx, nil) }},
	}
	before := lastTxID(t, b)
	for _, n := range noops {
		if err := n.run(); err != nil {
			t.Errorf("%s alone: %v", n.name, err)
		}
	}
	if got := lastTxID(t, b); got != before {
		t.Errorf("no-op writes alone took %d commits, want none", got-before)
	}

	blockerTx, release := blockCommitter(t, g)
	errs := make([]error, len(noops))
	var wg sync.WaitGroup
	for i, n := range noops {
		wg.Go(func() { errs[i] = n.run() })
		waitPending(t, g, i+1)
	}
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s grouped: %v", noops[i].name, err)
		}
	}
	if got := lastTxID(t, b); got != blockerTx {
		t.Errorf("a group of no-op writes took %d commits, want none", got-blockerTx)
	}
	if list, err := b.ListCalls(ctx); err != nil || len(list) != 1 || list[0].Seq != 1 {
		t.Errorf("ListCalls = %+v, %v; want just c", list, err)
	}
}

// groupPanicEnv names the backend TestGroupCommitMemberPanic's child runs
// on; the child is this test binary.
const groupPanicEnv = "DOCKERFAASD_STORE_GROUP_PANIC"

// TestGroupCommitMemberPanic: a write whose op panics must panic in its own
// caller, where it can be recovered (as bbolt's Update and the memory
// backend do), roll back, and leave the store working. The panic is run in
// a child process because, should it escape to another goroutine, it
// kills the whole process.
func TestGroupCommitMemberPanic(t *testing.T) {
	if backend := os.Getenv(groupPanicEnv); backend != "" {
		groupPanicChild(backend)
		return
	}
	for _, backend := range []string{"memory", "bolt"} {
		t.Run(backend, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGroupCommitMemberPanic$", "-test.count=1")
			cmd.Env = append(os.Environ(), groupPanicEnv+"="+backend, "TMPDIR="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte("recovered: change panicked\n")) || !bytes.Contains(out, []byte("store still works\n")) {
				if len(out) > 2000 {
					out = out[:2000]
				}
				t.Errorf("a panicking UpdateCall on %s was not recovered by its caller (child: %v):\n%s", backend, err, out)
			}
		})
	}
}

// groupPanicChild is TestGroupCommitMemberPanic's child: it exits 0 after
// printing what happened when the panic was recovered and the store works.
func groupPanicChild(backend string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var s Store = NewMemory()
	if backend == "bolt" {
		dir, err := os.MkdirTemp("", "group-panic")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(dir)
		b, err := Open(filepath.Join(dir, "state.db"))
		if err != nil {
			fail(err)
		}
		s = b
	}
	ctx := context.Background()
	if _, err := s.Create(ctx, types.FunctionDeployment{Service: "fn", Image: "img"}, 1); err != nil {
		fail(err)
	}
	if _, _, err := s.AcceptCall(ctx, groupCall("c", groupFn), groupPayload("c")); err != nil {
		fail(err)
	}
	func() {
		defer func() { fmt.Printf("recovered: %v\n", recover()) }()
		_, err := s.UpdateCall(ctx, "c", func(c *Call) (PayloadChange, error) {
			c.State = CallFailed
			panic("change panicked")
		})
		fmt.Println("UpdateCall returned", err)
	}()
	c, err := s.UpdateCall(ctx, "c", func(c *Call) (PayloadChange, error) {
		c.Attempts++
		return PayloadChange{}, nil
	})
	if err != nil {
		fail(err)
	}
	if c.State != CallQueued || c.Attempts != 1 {
		fail(fmt.Errorf("call after the panic: %+v", c))
	}
	fmt.Println("store still works")
	_ = s.Close()
	os.Exit(0)
}

// TestGroupCommitAfterClose: a grouped write after Close fails instead of
// hanging, and so does every later one.
func TestGroupCommitAfterClose(t *testing.T) {
	b := openGroupBolt(t)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		done := make(chan error, 1)
		go func() {
			id := fmt.Sprintf("late-%d", i)
			_, _, err := b.AcceptCall(context.Background(), groupCall(id, groupFn), groupPayload(id))
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("AcceptCall %d after Close succeeded", i)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("AcceptCall %d after Close hangs", i)
		}
	}
}

// benchmarkAcceptCall accepts calls with a 512-byte body into a bbolt
// file, durably, and reports accepts per second and per commit: with
// concurrent writers a commit, and its fsync, carries many accepts.
func benchmarkAcceptCall(b *testing.B, parallel bool) {
	s := openGroupBolt(b)
	ctx := context.Background()
	body := bytes.Repeat([]byte("x"), 512)
	var n atomic.Int64
	accept := func() error {
		id := fmt.Sprintf("call-%08d", n.Add(1))
		_, _, err := s.AcceptCall(ctx, Call{ID: id, Function: groupFn, Method: http.MethodPost, Path: "/",
			State: CallQueued, AcceptedAt: time.Now()}, CallPayload{Header: http.Header{"Content-Type": {"application/json"}}, Body: body})
		return err
	}
	tx0 := lastTxID(b, s)
	b.ReportAllocs()
	if parallel {
		b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0))) // about 32 writers
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := accept(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
	} else {
		for b.Loop() {
			if err := accept(); err != nil {
				b.Fatal(err)
			}
		}
	}
	accepts, commits := float64(n.Load()), float64(max(lastTxID(b, s)-tx0, 1))
	b.ReportMetric(accepts/b.Elapsed().Seconds(), "accepts/s")
	b.ReportMetric(accepts/commits, "accepts/commit")
}

// BenchmarkAcceptCallSerial is one writer: one commit and fsync per accept.
func BenchmarkAcceptCallSerial(b *testing.B) { benchmarkAcceptCall(b, false) }

// BenchmarkAcceptCallParallel is about 32 writers sharing commits.
func BenchmarkAcceptCallParallel(b *testing.B) { benchmarkAcceptCall(b, true) }
