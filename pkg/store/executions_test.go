package store

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	bolt "go.etcd.io/bbolt"
)

func TestKVScanReverse(t *testing.T) {
	keys := []string{"b/2", "a/1", "b/1", "c"}
	for name, k := range kvBackends(t) {
		if err := k.update(func(tx kvTx) error {
			for _, key := range keys {
				if err := tx.bucket(testBucket).Put([]byte(key), []byte("v:"+key)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{0, 2} {
			var got []string
			_ = k.view(func(tx kvTx) error {
				tx.bucket(testBucket).scanReverse(func(k, v []byte) bool {
					if string(v) != "v:"+string(k) {
						t.Errorf("%s: scanReverse gave %q for %q", name, v, k)
					}
					got = append(got, string(k))
					return limit == 0 || len(got) < limit
				})
				return nil
			})
			want := []string{"c", "b/2", "b/1", "a/1"}
			if limit > 0 {
				want = want[:limit]
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: scanReverse (limit %d) = %q, want %q", name, limit, got, want)
			}
		}
	}
}

// seedExecutions stores n final records of function fn, one a second
// (oldest first, the newest an hour ago), in transactions of 500, and
// returns the store.
func seedExecutions(tb testing.TB, e *engine, n int, fn func(i int) string) {
	tb.Helper()
	base := time.Now().Add(-time.Hour - time.Duration(n)*time.Second)
	for from := 0; from < n; from += 500 {
		if _, err := write(tb.Context(), e, subject{what: "seed", bare: true}, func(tx *txn) (struct{}, error) {
			for i := from; i < min(from+500, n); i++ {
				start := base.Add(time.Duration(i) * time.Second)
				state := ExecutionSucceeded
				if i%7 == 0 {
					state = ExecutionFailed
				}
				ex := Execution{
					ID: fmt.Sprintf("call-%06d.1", i), Kind: ExecutionAsync, Attempt: 1, Function: fn(i),
					State: state, StartedAt: start, FinishedAt: start.Add(20 * time.Millisecond),
					StatusCode: 200, BytesIn: 62, BytesOut: 12,
				}
				if err := putExecution(tx, ex); err != nil {
					return struct{}{}, err
				}
			}
			return struct{}{}, nil
		}); err != nil {
			tb.Fatal(err)
		}
	}
}

func oneFunction(int) string { return "openfaas-fn/fn" }

// TestPruneExecutionsInBatches: a prune due for more than one
// transaction's worth removes them all, oldest first, in several writes.
func TestPruneExecutionsInBatches(t *testing.T) {
	m := NewMemory()
	const n, keep = 2*pruneBatch + 300, 250
	seedExecutions(t, &m.engine, n, oneFunction)
	removed, err := m.PruneExecutions(t.Context(), keep, 0)
	if err != nil || removed != n-keep {
		t.Fatalf("PruneExecutions = %d, %v; want %d", removed, err, n-keep)
	}
	list, err := m.ListExecutions(t.Context(), ExecutionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != keep || list[0].ID != fmt.Sprintf("call-%06d.1", n-1) || list[keep-1].ID != fmt.Sprintf("call-%06d.1", n-keep) {
		t.Errorf("kept %d records, %s … %s", len(list), list[0].ID, list[len(list)-1].ID)
	}
}

// TestExecutionBoltCheck: Check passes with records stored and replaced,
// and names a record whose index entry is missing, stale or malformed.
func TestExecutionBoltCheck(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	entry := func(startedAt time.Time, id string) []byte {
		return execIndexKey(Execution{ID: id, StartedAt: startedAt})
	}
	cases := []struct {
		name  string
		plant func(tx *bolt.Tx) error
		want  string // in the error; "" means the file is healthy
	}{
		{name: "healthy"},
		{"record without entry", func(tx *bolt.Tx) error {
			return tx.Bucket(executionIndex).Delete(entry(start, "a"))
		}, "1 entries for 2 records"},
		{"entry without record", func(tx *bolt.Tx) error {
			return tx.Bucket(executionRecords.name).Delete([]byte("a"))
		}, `execution "a": execution index damaged`},
		{"entry saying another state", func(tx *bolt.Tx) error {
			v := execIndexValue(Execution{State: ExecutionRunning, Kind: ExecutionJob, Function: "openfaas-fn/fn"})
			return tx.Bucket(executionIndex).Put(entry(start, "a"), v)
		}, "does not match its record"},
		{"malformed entry", func(tx *bolt.Tx) error {
			return tx.Bucket(executionIndex).Put([]byte("short"), []byte("x"))
		}, "malformed entry"},
		{"record not JSON", func(tx *bolt.Tx) error {
			return tx.Bucket(executionRecords.name).Put([]byte("a"), []byte("{"))
		}, `execution "a": decode`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, ex := range []Execution{
				{ID: "a", Kind: ExecutionJob, Function: "openfaas-fn/fn", State: ExecutionRunning, StartedAt: start.Add(-time.Minute)},
				{ID: "a", Kind: ExecutionJob, Function: "openfaas-fn/fn", State: ExecutionSucceeded, StartedAt: start, FinishedAt: start.Add(time.Second)},
				{ID: "b", Kind: ExecutionAsync, Function: "openfaas-fn/fn", State: ExecutionRunning, StartedAt: start},
			} {
				if err := s.PutExecution(t.Context(), ex); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Check(); err != nil {
				t.Fatalf("Check with records stored: %v", err)
			}
			if c.plant == nil {
				_ = s.Close()
				return
			}
			if err := s.db.Update(c.plant); err != nil {
				t.Fatal(err)
			}
			err = s.Check()
			_ = s.Close()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Check = %v, want it to name %q", err, c.want)
			}
		})
	}
}

// The benchmarks below show that the costs the API and the debug page pay
// grow with what they return, not with the records kept: tens of
// thousands of records, lists of 100, five runs per function.

const benchExecutions = 20000

func benchExecutionStore(b *testing.B, fns int) *Bolt {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	seedExecutions(b, &s.engine, benchExecutions, func(i int) string { return fmt.Sprintf("openfaas-fn/fn-%03d", i%fns) })
	return s
}

// BenchmarkExecutions: what the API, the debug page and the pruner pay on
// 20,000 records of 20 functions (1,000 each). DecodeAll is the baseline
// the index avoids: decoding every record, as a list without an index
// would. The cases only read, so they share one store.
func BenchmarkExecutions(b *testing.B) {
	s := benchExecutionStore(b, 20)
	for _, bm := range []struct {
		name string
		want int
		run  func(ctx context.Context) (int, error)
	}{
		// GET /system/executions (limit 100).
		{"ListNewest100", 100, func(ctx context.Context) (int, error) {
			list, err := s.ListExecutions(ctx, ExecutionFilter{Limit: 100})
			return len(list), err
		}},
		// The newest 100 of one function.
		{"ListFunction100", 100, func(ctx context.Context) (int, error) {
			list, err := s.ListExecutions(ctx, ExecutionFilter{Function: "openfaas-fn/fn-007", Limit: 100})
			return len(list), err
		}},
		// What /debug/reconcile reads, 5 runs for each function.
		{"Summarize", 20, func(ctx context.Context) (int, error) {
			sums, err := s.SummarizeExecutions(ctx, 5)
			return len(sums), err
		}},
		// The periodic pass when the records are within bounds (the
		// usual case): a read, no write.
		{"PruneNothingDue", 0, func(ctx context.Context) (int, error) {
			return s.PruneExecutions(ctx, benchExecutions, 24*time.Hour)
		}},
		{"DecodeAll", benchExecutions, func(ctx context.Context) (int, error) {
			n := 0
			err := s.read(ctx, subject{what: "bench", bare: true}, func(tx *txn) error {
				list, err := executionRecords.list(tx, nil)
				n = len(list)
				return err
			})
			return n, err
		}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if n, err := bm.run(b.Context()); err != nil || n != bm.want {
					b.Fatal(n, err)
				}
			}
		})
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchAttemptOutcomes is what the async queue writes per call: the
// accept, then the attempt's outcome, by 32 writers sharing commits; with
// record, the outcome carries its execution record (and the attempt reads
// whether its number is free first). It reports the process's CPU per
// call, the cost the record adds; ns/op is mostly waiting for fsync.
func benchAttemptOutcomes(b *testing.B, record bool) {
	s, err := Open(filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if _, err := s.Create(b.Context(), types.FunctionDeployment{Service: "fn", Image: "img"}, 1); err != nil {
		b.Fatal(err)
	}
	const writers = 32
	n := b.N
	cpu := cpuTime()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				id := fmt.Sprintf("%08x-%d", uint32(i)*2654435761, i) // spread like UUIDs
				c := Call{ID: id, Function: "openfaas-fn/fn", Method: http.MethodPost, Path: "/", State: CallQueued, AcceptedAt: time.Now().UTC()}
				if _, _, err := s.AcceptCall(b.Context(), c, CallPayload{Body: []byte(`{"bench":"async","payload":"0123456789abcdef"}`)}); err != nil {
					b.Error(err)
					return
				}
				if record {
					_, _ = s.GetExecution(b.Context(), id+".1")
				}
				started := time.Now()
				if _, err := s.UpdateCall(b.Context(), id, func(c *Call) (PayloadChange, error) {
					c.State, c.Attempts, c.LastCode, c.FinishedAt = CallSucceeded, 1, 200, time.Now().UTC()
					pc := PayloadChange{Drop: true}
					if record {
						pc.Execution = &Execution{ID: id + ".1", Kind: ExecutionAsync, Attempt: 1, Function: c.Function,
							State: ExecutionSucceeded, StartedAt: started, FinishedAt: time.Now(), StatusCode: 200, BytesIn: 45, BytesOut: 12}
					}
					return pc, nil
				}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(cpuTime()-cpu)/float64(n)/1e3, "cpu-µs/call")
}

func BenchmarkAttemptOutcomesWithoutRecord(b *testing.B) { benchAttemptOutcomes(b, false) }
func BenchmarkAttemptOutcomesWithRecord(b *testing.B)    { benchAttemptOutcomes(b, true) }
