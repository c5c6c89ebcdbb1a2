package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	bolt "go.etcd.io/bbolt"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// callFn and callOtherFn are the functions the call tests accept calls for.
var (
	callFn      = store.Key(store.DefaultNamespace, "fn")
	callOtherFn = store.Key(store.DefaultNamespace, "other")
)

// callStores returns both backends, each holding the functions callFn and
// callOtherFn and no calls.
func callStores(t *testing.T) map[string]store.Store {
	t.Helper()
	return map[string]store.Store{"bolt": callStore(t, "bolt"), "memory": callStore(t, "memory")}
}

// callStore is one of callStores' backends, by name.
func callStore(t *testing.T, backend string) store.Store {
	t.Helper()
	var s store.Store
	switch backend {
	case "bolt":
		s = openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	case "memory":
		s = store.NewMemory()
	default:
		t.Fatalf("no backend %q", backend)
	}
	createCallFunctions(t, s)
	return s
}

func createCallFunctions(t *testing.T, s store.Store) {
	t.Helper()
	for _, name := range []string{"fn", "other"} {
		if _, err := s.Create(t.Context(), types.FunctionDeployment{Service: name, Image: "img"}, 1); err != nil {
			t.Fatal(err)
		}
	}
}

// newCall is a freshly accepted call for fn, as the API builds it.
func newCall(id, fn string) store.Call {
	return store.Call{
		ID:          id,
		Function:    fn,
		Method:      http.MethodPost,
		Path:        "/hook",
		Query:       "a=1",
		CallbackURL: "http://receiver.example/done",
		State:       store.CallQueued,
		AcceptedAt:  time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC),
		Callback:    store.CallbackPending,
	}
}

// newPayload is a request payload whose body names id.
func newPayload(id string) store.CallPayload {
	return store.CallPayload{
		ID:     id,
		Header: http.Header{"Content-Type": {"application/json"}, "X-Call-Id": {id}},
		Body:   []byte(`{"call":"` + id + `"}`),
	}
}

// mustAccept accepts a new call and fails the test unless it is stored.
func mustAccept(t *testing.T, s store.Store, c store.Call, p store.CallPayload) store.Call {
	t.Helper()
	got, dup, err := s.AcceptCall(t.Context(), c, p)
	if err != nil {
		t.Fatalf("AcceptCall(%s): %v", c.ID, err)
	}
	if dup {
		t.Fatalf("AcceptCall(%s): dup for a new call", c.ID)
	}
	return got
}

// sameCall compares calls as they are stored (JSON), so that equal times
// in different representations compare equal.
func sameCall(t *testing.T, got, want store.Call) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("call\n  got  %s\n  want %s", g, w)
	}
}

func mustGetCall(t *testing.T, s store.Store, id string) store.Call {
	t.Helper()
	c, err := s.GetCall(t.Context(), id)
	if err != nil {
		t.Fatalf("GetCall(%s): %v", id, err)
	}
	return c
}

func mustGetPayload(t *testing.T, s store.Store, id string) store.CallPayload {
	t.Helper()
	p, err := s.GetCallPayload(t.Context(), id)
	if err != nil {
		t.Fatalf("GetCallPayload(%s): %v", id, err)
	}
	return p
}

func samePayload(t *testing.T, got, want store.CallPayload) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("payload\n  got  %+v\n  want %+v", got, want)
	}
}

func callIDs(calls []store.Call) []string {
	ids := make([]string, len(calls))
	for i, c := range calls {
		ids[i] = c.ID
	}
	return ids
}

func mustListCalls(t *testing.T, s store.Store) []store.Call {
	t.Helper()
	list, err := s.ListCalls(t.Context())
	if err != nil {
		t.Fatalf("ListCalls: %v", err)
	}
	return list
}

func TestCallAcceptRefused(t *testing.T) {
	cases := []struct {
		name    string
		call    store.Call
		wantIs  error  // nil: any error
		wantMsg string // in the error
	}{
		{name: "unknown function", call: newCall("c1", store.Key(store.DefaultNamespace, "nope")), wantIs: store.ErrNotFound, wantMsg: "nope"},
		{name: "function in another namespace", call: newCall("c1", store.Key("dev", "fn")), wantIs: store.ErrNotFound, wantMsg: "dev/fn"},
		{name: "no function", call: newCall("c1", ""), wantIs: store.ErrNotFound},
		{name: "empty id", call: newCall("", callFn), wantMsg: "empty call id"},
	}
	for name, s := range callStores(t) {
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				got, dup, err := s.AcceptCall(t.Context(), c.call, newPayload(c.call.ID))
				if err == nil {
					t.Fatalf("AcceptCall = %+v, %v, nil; want an error", got, dup)
				}
				if c.wantIs != nil && !errors.Is(err, c.wantIs) {
					t.Errorf("AcceptCall = %v, want an error wrapping %v", err, c.wantIs)
				}
				if c.wantIs == nil && (errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict)) {
					t.Errorf("AcceptCall = %v, want no sentinel", err)
				}
				if !strings.Contains(err.Error(), c.wantMsg) {
					t.Errorf("AcceptCall = %q, want it to mention %q", err, c.wantMsg)
				}
				if list := mustListCalls(t, s); len(list) != 0 {
					t.Errorf("ListCalls after a refused accept = %v, want none", callIDs(list))
				}
				if _, err := s.GetCall(t.Context(), c.call.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("GetCall after a refused accept = %v, want ErrNotFound", err)
				}
				if _, err := s.GetCallPayload(t.Context(), c.call.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("GetCallPayload after a refused accept = %v, want ErrNotFound", err)
				}
			})
		}
		// Refused accepts consumed no sequence number.
		t.Run(name+"/first accept after refusals", func(t *testing.T) {
			if got := mustAccept(t, s, newCall("first", callFn), newPayload("first")); got.Seq != 1 {
				t.Errorf("Seq = %d, want 1", got.Seq)
			}
		})
	}
}

func TestCallAcceptStores(t *testing.T) {
	for name, s := range callStores(t) {
		t.Run(name, func(t *testing.T) {
			var last uint64
			for i, id := range []string{"c", "a", "b", "call-with.dots_and:colons-1"} {
				c := newCall(id, callFn)
				c.Seq = 999 // not the caller's to choose
				p := newPayload("ignored-" + id)
				got := mustAccept(t, s, c, p)
				if got.Seq <= last {
					t.Errorf("accept %d (%s): Seq %d, want above %d", i, id, got.Seq, last)
				}
				last = got.Seq
				want := c
				want.Seq = got.Seq
				sameCall(t, got, want)
				sameCall(t, mustGetCall(t, s, id), got)
				wantP := p
				wantP.ID = id // the payload belongs to the call
				samePayload(t, mustGetPayload(t, s, id), wantP)
			}
		})
	}
}

func TestCallAcceptDuplicate(t *testing.T) {
	cases := []struct {
		name    string
		fn      string
		wantDup bool
		wantErr error
	}{
		{name: "same function", fn: callFn, wantDup: true},
		{name: "another function", fn: callOtherFn, wantErr: store.ErrConflict},
		{name: "an unknown function", fn: store.Key(store.DefaultNamespace, "nope"), wantErr: store.ErrConflict},
	}
	for name, s := range callStores(t) {
		for i, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				id := fmt.Sprintf("dup-%d", i)
				orig := mustAccept(t, s, newCall(id, callFn), newPayload(id))
				origP := mustGetPayload(t, s, id)

				again := newCall(id, c.fn)
				again.Method, again.Path, again.CallbackURL = http.MethodPut, "/other", ""
				againP := store.CallPayload{Body: []byte("a different body")}
				got, dup, err := s.AcceptCall(t.Context(), again, againP)
				switch {
				case c.wantErr != nil:
					if !errors.Is(err, c.wantErr) {
						t.Errorf("AcceptCall again = %+v, %v, %v; want %v", got, dup, err, c.wantErr)
					}
				case err != nil:
					t.Errorf("AcceptCall again: %v", err)
				default:
					if dup != c.wantDup {
						t.Errorf("AcceptCall again: dup %v, want %v", dup, c.wantDup)
					}
					sameCall(t, got, orig)
				}
				sameCall(t, mustGetCall(t, s, id), orig)
				samePayload(t, mustGetPayload(t, s, id), origP)
				if n := len(mustListCalls(t, s)); n != i+1 {
					t.Errorf("ListCalls has %d calls, want %d", n, i+1)
				}
			})
		}
		t.Run(name+"/next accept gets a new Seq", func(t *testing.T) {
			list := mustListCalls(t, s)
			got := mustAccept(t, s, newCall("after-dups", callFn), newPayload("after-dups"))
			if want := list[len(list)-1].Seq + 1; got.Seq != want {
				t.Errorf("Seq = %d, want %d", got.Seq, want)
			}
		})
	}
}

func TestCallUpdate(t *testing.T) {
	errChange := errors.New("change refused")
	replacement := store.CallPayload{
		ID:     "some-other-id",
		Header: http.Header{"X-Result": {"1"}},
		Result: &store.CallResult{Code: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("done")},
	}
	finish := func(c *store.Call) {
		c.State = store.CallSucceeded
		c.Attempts++
		c.MaxAttempts = 3
		c.LastCode = 200
		c.FinishedAt = time.Date(2025, time.March, 1, 12, 0, 5, 0, time.UTC)
		c.DurationSeconds = 1.5
	}
	cases := []struct {
		name   string
		id     string // "" means the call the case accepted
		change func(c *store.Call) (store.PayloadChange, error)
		// wantErr: the update fails with it (errors.Is) and changes nothing.
		wantErr error
		// wantCall edits the accepted call into what is stored after.
		wantCall func(c *store.Call)
		// wantPayload is the payload after; nil means none.
		wantPayload func(id string) *store.CallPayload
	}{
		{
			name:        "keep payload",
			change:      func(c *store.Call) (store.PayloadChange, error) { finish(c); return store.PayloadChange{}, nil },
			wantCall:    finish,
			wantPayload: func(id string) *store.CallPayload { p := newPayload(id); return &p },
		},
		{
			name: "drop payload",
			change: func(c *store.Call) (store.PayloadChange, error) {
				finish(c)
				return store.PayloadChange{Drop: true}, nil
			},
			wantCall:    finish,
			wantPayload: func(string) *store.CallPayload { return nil },
		},
		{
			name: "set payload",
			change: func(c *store.Call) (store.PayloadChange, error) {
				finish(c)
				p := replacement
				return store.PayloadChange{Set: &p}, nil
			},
			wantCall: finish,
			wantPayload: func(id string) *store.CallPayload {
				p := replacement
				p.ID = id
				return &p
			},
		},
		{
			name: "id cannot be changed",
			change: func(c *store.Call) (store.PayloadChange, error) {
				c.ID = "renamed"
				c.State = store.CallRunning
				return store.PayloadChange{}, nil
			},
			wantCall:    func(c *store.Call) { c.State = store.CallRunning },
			wantPayload: func(id string) *store.CallPayload { p := newPayload(id); return &p },
		},
		{
			name: "change error",
			change: func(c *store.Call) (store.PayloadChange, error) {
				finish(c)
				return store.PayloadChange{Drop: true}, errChange
			},
			wantErr: errChange,
		},
		{
			name: "change error wrapped",
			change: func(c *store.Call) (store.PayloadChange, error) {
				p := replacement
				c.State = store.CallCancelled
				return store.PayloadChange{Set: &p}, fmt.Errorf("cancel: %w", errChange)
			},
			wantErr: errChange,
		},
		{
			name: "unknown id",
			id:   "missing",
			change: func(c *store.Call) (store.PayloadChange, error) {
				panic("change must not run for a missing call")
			},
			wantErr: store.ErrNotFound,
		},
	}
	for name, s := range callStores(t) {
		for i, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				id := fmt.Sprintf("upd-%d", i)
				orig := mustAccept(t, s, newCall(id, callFn), newPayload(id))
				origP := mustGetPayload(t, s, id)
				target := id
				if c.id != "" {
					target = c.id
				}
				got, err := s.UpdateCall(t.Context(), target, c.change)
				if c.wantErr != nil {
					if !errors.Is(err, c.wantErr) {
						t.Errorf("UpdateCall = %+v, %v; want %v", got, err, c.wantErr)
					}
					sameCall(t, mustGetCall(t, s, id), orig)
					samePayload(t, mustGetPayload(t, s, id), origP)
					if _, err := s.GetCall(t.Context(), "missing"); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("GetCall(missing) = %v, want ErrNotFound", err)
					}
					if _, err := s.GetCall(t.Context(), "renamed"); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("GetCall(renamed) = %v, want ErrNotFound", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("UpdateCall: %v", err)
				}
				want := orig
				c.wantCall(&want)
				sameCall(t, got, want)
				sameCall(t, mustGetCall(t, s, id), want)
				if _, err := s.GetCall(t.Context(), "renamed"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("GetCall(renamed) = %v, want ErrNotFound", err)
				}
				if wantP := c.wantPayload(id); wantP != nil {
					samePayload(t, mustGetPayload(t, s, id), *wantP)
				} else if p, err := s.GetCallPayload(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("GetCallPayload after drop = %+v, %v; want ErrNotFound", p, err)
				}
			})
		}
	}
}

// TestCallUpdateDropTwice: dropping a payload that is already gone is not
// an error, and the record still changes.
func TestCallUpdateDropTwice(t *testing.T) {
	for name, s := range callStores(t) {
		t.Run(name, func(t *testing.T) {
			mustAccept(t, s, newCall("c", callFn), newPayload("c"))
			for i := range 2 {
				got, err := s.UpdateCall(t.Context(), "c", func(c *store.Call) (store.PayloadChange, error) {
					c.Attempts++
					return store.PayloadChange{Drop: true}, nil
				})
				if err != nil {
					t.Fatalf("drop %d: %v", i, err)
				}
				if got.Attempts != i+1 {
					t.Errorf("drop %d: Attempts %d, want %d", i, got.Attempts, i+1)
				}
			}
			if _, err := s.GetCallPayload(t.Context(), "c"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetCallPayload = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestCallListSortedBySeq(t *testing.T) {
	for name, s := range callStores(t) {
		t.Run(name, func(t *testing.T) {
			if list := mustListCalls(t, s); len(list) != 0 {
				t.Fatalf("ListCalls of an empty store = %v", callIDs(list))
			}
			// Key order (a < b < c ...) differs from acceptance order.
			order := []string{"m", "b", "z", "a", "k", "a2", "0"}
			for i, id := range order {
				fn := callFn
				if i%2 == 1 {
					fn = callOtherFn
				}
				mustAccept(t, s, newCall(id, fn), newPayload(id))
			}
			// Updates do not reorder.
			if _, err := s.UpdateCall(t.Context(), "m", func(c *store.Call) (store.PayloadChange, error) {
				c.State = store.CallRetrying
				return store.PayloadChange{}, nil
			}); err != nil {
				t.Fatal(err)
			}
			list := mustListCalls(t, s)
			if got := callIDs(list); !slices.Equal(got, order) {
				t.Errorf("ListCalls = %v, want %v", got, order)
			}
			for i := 1; i < len(list); i++ {
				if list[i].Seq <= list[i-1].Seq {
					t.Errorf("ListCalls[%d].Seq = %d after %d", i, list[i].Seq, list[i-1].Seq)
				}
			}
			if list[0].State != store.CallRetrying {
				t.Errorf("listed call m: state %q, want %q", list[0].State, store.CallRetrying)
			}
		})
	}
}

func TestCallDelete(t *testing.T) {
	cases := []struct {
		name     string
		delete   []string
		wantLeft []string
	}{
		{name: "none", delete: nil, wantLeft: []string{"a", "b", "c", "d"}},
		{name: "empty", delete: []string{}, wantLeft: []string{"a", "b", "c", "d"}},
		{name: "one", delete: []string{"b"}, wantLeft: []string{"a", "c", "d"}},
		{name: "several", delete: []string{"d", "a"}, wantLeft: []string{"b", "c"}},
		{name: "absent skipped", delete: []string{"x", "c", "y"}, wantLeft: []string{"a", "b", "d"}},
		{name: "only absent", delete: []string{"x"}, wantLeft: []string{"a", "b", "c", "d"}},
		{name: "repeated", delete: []string{"a", "a"}, wantLeft: []string{"b", "c", "d"}},
		{name: "without payload", delete: []string{"b"}, wantLeft: []string{"a", "c", "d"}}, // b's payload dropped first
		{name: "all", delete: []string{"a", "b", "c", "d"}, wantLeft: []string{}},
	}
	for _, name := range []string{"bolt", "memory"} {
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				s := callStore(t, name)
				for _, id := range []string{"a", "b", "c", "d"} {
					mustAccept(t, s, newCall(id, callFn), newPayload(id))
				}
				if c.name == "without payload" {
					if _, err := s.UpdateCall(t.Context(), "b", func(*store.Call) (store.PayloadChange, error) {
						return store.PayloadChange{Drop: true}, nil
					}); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.DeleteCalls(t.Context(), c.delete); err != nil {
					t.Fatalf("DeleteCalls(%v): %v", c.delete, err)
				}
				if got := callIDs(mustListCalls(t, s)); !slices.Equal(got, c.wantLeft) {
					t.Errorf("left %v, want %v", got, c.wantLeft)
				}
				for _, id := range []string{"a", "b", "c", "d"} {
					_, errC := s.GetCall(t.Context(), id)
					_, errP := s.GetCallPayload(t.Context(), id)
					if slices.Contains(c.wantLeft, id) {
						if errC != nil {
							t.Errorf("GetCall(%s) = %v, want it kept", id, errC)
						}
						if errP != nil && !(c.name == "without payload" && id == "b") {
							t.Errorf("GetCallPayload(%s) = %v, want it kept", id, errP)
						}
						continue
					}
					if !errors.Is(errC, store.ErrNotFound) {
						t.Errorf("GetCall(%s) = %v, want ErrNotFound", id, errC)
					}
					if !errors.Is(errP, store.ErrNotFound) {
						t.Errorf("GetCallPayload(%s) = %v, want ErrNotFound", id, errP)
					}
				}
			})
		}
	}
}

func TestCallPendingDone(t *testing.T) {
	cases := []struct {
		state, callback string
		pending, done   bool
	}{
		{store.CallQueued, "", true, false},
		{store.CallRunning, "", true, false},
		{store.CallRetrying, "", true, false},
		{store.CallQueued, store.CallbackPending, true, false},
		{store.CallRetrying, store.CallbackFailed, true, false},
		{store.CallSucceeded, "", false, true},
		{store.CallFailed, "", false, true},
		{store.CallCancelled, "", false, true},
		{store.CallSucceeded, store.CallbackPending, false, false},
		{store.CallFailed, store.CallbackPending, false, false},
		{store.CallSucceeded, store.CallbackDelivered, false, true},
		{store.CallFailed, store.CallbackFailed, false, true},
		{store.CallCancelled, store.CallbackPending, false, false},
	}
	for _, c := range cases {
		t.Run(c.state+"/"+c.callback, func(t *testing.T) {
			call := store.Call{State: c.state, Callback: c.callback}
			if got := call.Pending(); got != c.pending {
				t.Errorf("Pending() = %v, want %v", got, c.pending)
			}
			if got := call.Done(); got != c.done {
				t.Errorf("Done() = %v, want %v", got, c.done)
			}
		})
	}
}

func TestCallBoltReopenKeepsCalls(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	createCallFunctions(t, s)
	for _, id := range []string{"c", "a", "b"} {
		mustAccept(t, s, newCall(id, callFn), newPayload(id))
	}
	result := store.CallPayload{Result: &store.CallResult{Code: 500, Body: []byte("oops")}}
	if _, err := s.UpdateCall(ctx, "a", func(c *store.Call) (store.PayloadChange, error) {
		c.State, c.LastCode, c.Attempts = store.CallFailed, 500, 1
		return store.PayloadChange{Set: &result}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateCall(ctx, "b", func(c *store.Call) (store.PayloadChange, error) {
		c.State, c.Callback = store.CallSucceeded, store.CallbackDelivered
		return store.PayloadChange{Drop: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCalls(ctx, []string{"c"}); err != nil {
		t.Fatal(err)
	}
	before := mustListCalls(t, s)
	payloadA := mustGetPayload(t, s, "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openBolt(t, path)
	after := mustListCalls(t, s)
	if len(after) != len(before) {
		t.Fatalf("after reopen ListCalls = %v, want %v", callIDs(after), callIDs(before))
	}
	for i := range before {
		sameCall(t, after[i], before[i])
	}
	samePayload(t, mustGetPayload(t, s, "a"), payloadA)
	for _, id := range []string{"b", "c"} {
		if _, err := s.GetCallPayload(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetCallPayload(%s) after reopen = %v, want ErrNotFound", id, err)
		}
	}
	// The sequence survives too: no Seq is handed out twice.
	got := mustAccept(t, s, newCall("d", callFn), newPayload("d"))
	if got.Seq != 4 {
		t.Errorf("Seq of the first accept after reopen = %d, want 4", got.Seq)
	}
	if err := s.Check(); err != nil {
		t.Errorf("Check after reopen: %v", err)
	}
}

// TestCallBoltCheck: Check passes with calls stored, and names call
// records and payloads the daemon could not read.
func TestCallBoltCheck(t *testing.T) {
	cases := []struct {
		name   string
		bucket string
		key    string
		value  string
		want   string // in the error; "" means the file is healthy
	}{
		{name: "healthy"},
		{"call not JSON", "calls", "broken", "{", `call "broken": decode`},
		{"call under another key", "calls", "alias", `{"id":"real","seq":9}`, `record is for "real"`},
		{"payload not JSON", "callPayloads", "broken", "[", `call payload "broken": decode`},
		{"payload under another key", "callPayloads", "alias", `{"id":"real"}`, `record is for "real"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := store.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			createCallFunctions(t, s)
			for _, id := range []string{"q", "r", "s"} {
				mustAccept(t, s, newCall(id, callFn), newPayload(id))
			}
			if _, err := s.UpdateCall(ctx, "r", func(c *store.Call) (store.PayloadChange, error) {
				c.State = store.CallSucceeded
				return store.PayloadChange{Set: &store.CallPayload{Result: &store.CallResult{Code: 200}}}, nil
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.UpdateCall(ctx, "s", func(c *store.Call) (store.PayloadChange, error) {
				c.State = store.CallFailed
				return store.PayloadChange{Drop: true}, nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := s.Check(); err != nil {
				t.Fatalf("Check with calls stored: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if c.bucket == "" {
				s = openBolt(t, path)
				if err := s.Check(); err != nil {
					t.Errorf("Check after reopen: %v", err)
				}
				return
			}
			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(c.bucket)).Put([]byte(c.key), []byte(c.value))
			}); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = store.Open(path)
			if err != nil {
				if !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Open = %v, want it to name %q", err, c.want)
				}
				return
			}
			t.Cleanup(func() { _ = s.Close() })
			if err := s.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Check = %v, want it to name %q", err, c.want)
			}
		})
	}
}

// TestCallWritesWakeNoWatcher: calls have no watch key, so accepting,
// updating and deleting them notify no one; a function write after them is
// the only key the Watcher reports.
func TestCallWritesWakeNoWatcher(t *testing.T) {
	for name, s := range callStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			var (
				mu     sync.Mutex
				hooked []string
			)
			w := s.Watch(ctx, store.OnCommit(func(key string) {
				mu.Lock()
				defer mu.Unlock()
				hooked = append(hooked, key)
			}))

			mustAccept(t, s, newCall("w1", callFn), newPayload("w1"))
			mustAccept(t, s, newCall("w2", callOtherFn), newPayload("w2"))
			if _, dup, err := s.AcceptCall(ctx, newCall("w1", callFn), newPayload("w1")); err != nil || !dup {
				t.Fatalf("duplicate accept = %v, %v", dup, err)
			}
			if _, err := s.UpdateCall(ctx, "w1", func(c *store.Call) (store.PayloadChange, error) {
				c.State = store.CallSucceeded
				return store.PayloadChange{Drop: true}, nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteCalls(ctx, []string{"w1", "w2"}); err != nil {
				t.Fatal(err)
			}

			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			if keys, err := w.Next(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Next after call writes = %v, %v; want nothing (deadline exceeded)", keys, err)
			}

			if _, err := s.Scale(ctx, callFn, 2); err != nil {
				t.Fatal(err)
			}
			keys, err := w.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{callFn}; !slices.Equal(keys, want) {
				t.Errorf("Next = %v, want %v", keys, want)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := []string{callFn}; !slices.Equal(hooked, want) {
				t.Errorf("OnCommit saw %v, want %v", hooked, want)
			}
		})
	}
}

// TestCallWritesReturnWhatGetReads: AcceptCall and UpdateCall return the
// call exactly (reflect.DeepEqual) as a later GetCall and ListCalls do,
// even when the caller's times carry a zone and a monotonic reading.
func TestCallWritesReturnWhatGetReads(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*60*60)
	now := time.Now() // local, with a monotonic reading
	cases := []struct {
		name   string
		change func(c *store.Call)
	}{
		{"started", func(c *store.Call) {
			c.State, c.StartedAt = store.CallRunning, time.Now()
		}},
		{"retrying", func(c *store.Call) {
			c.State, c.Attempts, c.LastCode, c.LastError = store.CallRetrying, 1, 503, "unavailable"
			c.NextAttemptAt = time.Now().In(zone).Add(time.Second)
		}},
		{"finished", func(c *store.Call) {
			c.State, c.FinishedAt, c.DurationSeconds = store.CallSucceeded, time.Now().In(zone), 0.123456789
			c.Callback, c.CallbackAttempts, c.CallbackNextAt = store.CallbackPending, 1, time.Now().Add(time.Minute)
		}},
	}
	for name, s := range callStores(t) {
		t.Run(name, func(t *testing.T) {
			c := newCall("z", callFn)
			c.AcceptedAt = now
			got := mustAccept(t, s, c, newPayload("z"))
			if read := mustGetCall(t, s, "z"); !reflect.DeepEqual(got, read) {
				t.Errorf("AcceptCall returned\n  %#v\nGetCall reads\n  %#v", got, read)
			}
			if !got.AcceptedAt.Equal(now) {
				t.Errorf("AcceptedAt = %v, want %v", got.AcceptedAt, now)
			}
			for _, cc := range cases {
				got, err := s.UpdateCall(t.Context(), "z", func(c *store.Call) (store.PayloadChange, error) {
					cc.change(c)
					return store.PayloadChange{}, nil
				})
				if err != nil {
					t.Fatalf("%s: %v", cc.name, err)
				}
				if read := mustGetCall(t, s, "z"); !reflect.DeepEqual(got, read) {
					t.Errorf("%s: UpdateCall returned\n  %#v\nGetCall reads\n  %#v", cc.name, got, read)
				}
				if list := mustListCalls(t, s); len(list) != 1 || !reflect.DeepEqual(list[0], got) {
					t.Errorf("%s: ListCalls = %#v, want [%#v]", cc.name, list, got)
				}
			}
		})
	}
}
