package swarm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

func put(key string, size int) []store.Op {
	return []store.Op{
		{Kind: store.OpPut, Bucket: "functions", Key: []byte(key), Value: bytes.Repeat([]byte(key[:1]), size)},
		{Kind: store.OpSequence, Bucket: "functions", Seq: uint64(len(key))},
	}
}

func openJournal(t *testing.T, eng engine.SwarmEngine, instance string, partSize int) *Journal {
	t.Helper()
	j, err := NewJournal(context.Background(), eng, instance, quiet())
	if err != nil {
		t.Fatalf("NewJournal: %v", err)
	}
	if partSize > 0 {
		j.partSize = partSize
	}
	return j
}

func mustAppend(t *testing.T, j *Journal, ops []store.Op) {
	t.Helper()
	if err := j.Append(context.Background(), ops); err != nil {
		t.Fatalf("append: %v", err)
	}
}

// mustSnapshot snapshots and waits for the pruning that follows.
func mustSnapshot(t *testing.T, j *Journal, ops []store.Op) {
	t.Helper()
	if err := j.Snapshot(context.Background(), ops); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	j.pruning.Wait()
}

func replayed(t *testing.T, j *Journal) [][]store.Op {
	t.Helper()
	var got [][]store.Op
	if err := j.Replay(context.Background(), func(ops []store.Op) error {
		got = append(got, ops)
		return nil
	}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	return got
}

func keys(batches [][]store.Op) string {
	var out []string
	for _, ops := range batches {
		var ks []string
		for _, op := range ops {
			if op.Kind == store.OpPut {
				ks = append(ks, string(op.Key))
			}
		}
		out = append(out, strings.Join(ks, "+"))
	}
	return strings.Join(out, ",")
}

// stateConfigs are the names of the journal's configs (the head aside).
func stateConfigs(eng *fake.Swarm) []string {
	var out []string
	for _, n := range eng.ConfigNames() {
		if !strings.HasSuffix(n, "-state-head") {
			out = append(out, n)
		}
	}
	return out
}

func TestJournalAppendReplayOrder(t *testing.T) {
	eng := fake.NewSwarm()
	j := openJournal(t, eng, "dfd", 0)
	var want [][]store.Op
	for _, k := range []string{"a1", "b2", "c3", "d4", "e5"} {
		mustAppend(t, j, put(k, 10))
		want = append(want, put(k, 10))
	}
	if got := replayed(t, j); !reflect.DeepEqual(got, want) {
		t.Fatalf("replay by the writer = %s, want %s", keys(got), keys(want))
	}
	if got := replayed(t, openJournal(t, eng, "dfd", 0)); !reflect.DeepEqual(got, want) {
		t.Fatalf("replay after a restart = %s, want %s", keys(got), keys(want))
	}
	if got := replayed(t, openJournal(t, eng, "other", 0)); len(got) != 0 {
		t.Fatalf("another instance replays %s, want nothing", keys(got))
	}
	for _, n := range stateConfigs(eng) {
		if !regexpMust(`^dfd-state-0000000000(0[1-5])-[0-9a-f]{8}$`).MatchString(n) {
			t.Errorf("unexpected config name %q", n)
		}
	}
}

func TestJournalSplitsLargeEntries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		parts  int
		noData bool
	}{
		{"fits in one config", 100, 1, false},
		{"split in parts", 1000, 0, false},
		{"split, list without data", 1000, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := fake.NewSwarm()
			eng.ListConfigsWithoutData(tc.noData)
			j := openJournal(t, eng, "dfd", 256)
			big := put("big", tc.size)
			mustAppend(t, j, put("x", 1))
			mustAppend(t, j, big)
			mustAppend(t, j, put("y", 1))
			names := stateConfigs(eng)
			var bigParts int
			for _, n := range names {
				if strings.Contains(n, "-state-000000000002-") {
					bigParts++
				}
			}
			if bigParts < 2 && tc.size > 256 || bigParts != 1 && tc.size <= 256 {
				t.Errorf("entry of %d bytes stored in %d configs: %v", tc.size, bigParts, names)
			}
			got := replayed(t, openJournal(t, eng, "dfd", 256))
			if want := [][]store.Op{put("x", 1), big, put("y", 1)}; !reflect.DeepEqual(got, want) {
				t.Fatalf("replay = %s, want %s", keys(got), keys(want))
			}
		})
	}
}

// The real limit: an entry of just over MaxConfigSize is split in two.
func TestJournalPartsAtTheSwarmLimit(t *testing.T) {
	eng := fake.NewSwarm()
	j := openJournal(t, eng, "dfd", 0)
	big := put("big", engine.MaxConfigSize)
	mustAppend(t, j, big)
	if n := len(stateConfigs(eng)); n != 2 {
		t.Fatalf("%d configs for an entry of %d bytes, want 2: %v", n, engine.MaxConfigSize, stateConfigs(eng))
	}
	if got := replayed(t, openJournal(t, eng, "dfd", 0)); !reflect.DeepEqual(got, [][]store.Op{big}) {
		t.Fatalf("replay = %s", keys(got))
	}
}

// once fails the first call of op whose argument contains nameHas.
func once(op, nameHas string) func(op, arg string) error {
	var n atomic.Int32
	return func(o, arg string) error {
		if o == op && strings.Contains(arg, nameHas) && n.Add(1) == 1 {
			return fmt.Errorf("%s %s: connection reset", o, arg)
		}
		return nil
	}
}

// An append that fails at any point is never replayed, does not block the
// entries after it, and leaves no garbage when the swarm answers.
func TestJournalFailedAppends(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before bool // fail before the call takes effect, or after (answer lost)
		op     string
		arg    string
		err    bool // the append reports an error
	}{
		{"first part not created", true, "create-config", "-state-000000000002-", true},
		{"second part not created", true, "create-config", ".1", true},
		{"commit refused", true, "update-config", "", true},
		{"commit done, answer lost", false, "update-config", "", true},
		{"part created, answer lost", false, "create-config", ".1", true},
		{"head not read back after the commit", true, "inspect-config", "-state-head", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := fake.NewSwarm()
			j := openJournal(t, eng, "dfd", 64)
			mustAppend(t, j, put("a", 100))
			f := once(tc.op, tc.arg)
			if tc.before {
				eng.Fail = f
			} else {
				eng.FailConfigsAfter(f)
			}
			err := j.Append(context.Background(), put("b", 100))
			if (err != nil) != tc.err {
				t.Fatalf("append err = %v, want error %v", err, tc.err)
			}
			if errors.Is(err, ErrFenced) {
				t.Fatalf("a failure is not a fence: %v", err)
			}
			eng.Fail = nil
			eng.FailConfigsAfter(nil)
			mustAppend(t, j, put("c", 100))
			want := "a,b,c"
			if tc.err {
				want = "a,c"
			}
			if got := keys(replayed(t, j)); got != want {
				t.Errorf("replay by the writer = %s, want %s", got, want)
			}
			if got := keys(replayed(t, openJournal(t, eng, "dfd", 64))); got != want {
				t.Errorf("replay after a restart = %s, want %s", got, want)
			}
			if n := len(strings.Split(want, ",")); j.Len() != n {
				t.Errorf("Len = %d, want %d", j.Len(), n)
			}
			// Parts of 64 bytes: "a" and "c" take 4 configs each. A part
			// whose creation was not answered is left to the next snapshot.
			if got := len(stateConfigs(eng)); got != 4*len(strings.Split(want, ",")) && tc.name != "part created, answer lost" {
				t.Errorf("configs left: %v", stateConfigs(eng))
			}
		})
	}
}

// A daemon that dies in the middle of an append leaves a partial entry: it
// was never acknowledged, so it is skipped, the next daemon appends after
// it, and the next snapshot removes it.
func TestJournalPartialEntryAfterCrash(t *testing.T) {
	eng := fake.NewSwarm()
	j := openJournal(t, eng, "dfd", 64)
	mustAppend(t, j, put("a", 10))
	// The daemon "dies" after the first part of its next entry: the part
	// creation fails from then on, and so does the clean-up.
	eng.Fail = func(op, arg string) error {
		if (op == "create-config" && strings.HasSuffix(arg, ".1")) || op == "remove-config" {
			return errors.New("daemon gone")
		}
		return nil
	}
	if err := j.Append(context.Background(), put("b", 100)); err == nil {
		t.Fatal("append succeeded")
	}
	eng.Fail = nil
	partial := 0
	for _, n := range stateConfigs(eng) {
		if strings.Contains(n, "-state-000000000002-") {
			partial++
		}
	}
	if partial != 1 {
		t.Fatalf("configs = %v, want entry 1 and the first part of entry 2", stateConfigs(eng))
	}
	j2 := openJournal(t, eng, "dfd", 64)
	if got := keys(replayed(t, j2)); got != "a" {
		t.Fatalf("replay = %s, want a", got)
	}
	mustAppend(t, j2, put("c", 10))
	if got := keys(replayed(t, openJournal(t, eng, "dfd", 64))); got != "a,c" {
		t.Fatalf("replay = %s, want a,c", got)
	}
	j3 := openJournal(t, eng, "dfd", 64)
	mustSnapshot(t, j3, append(put("a", 10), put("c", 10)...))
	for _, n := range stateConfigs(eng) {
		if !strings.Contains(n, "-snapshot-000000000002-") {
			t.Fatalf("after the snapshot: %v, want the snapshot only", stateConfigs(eng))
		}
	}
}

// Another daemon of the instance takes the journal over: the first one is
// fenced at its next write, for good, and what it wrote before is kept.
func TestJournalFencing(t *testing.T) {
	eng := fake.NewSwarm()
	old := openJournal(t, eng, "dfd", 0)
	mustAppend(t, old, put("a", 1))
	mustAppend(t, old, put("b", 1))
	taker := openJournal(t, eng, "dfd", 0)
	for i, call := range []func() error{
		func() error { return old.Append(context.Background(), put("zombie", 1)) },
		func() error { return old.Snapshot(context.Background(), put("zombie", 1)) },
		func() error { return old.Append(context.Background(), put("zombie", 1)) },
	} {
		err := call()
		if !errors.Is(err, ErrFenced) || !errors.Is(err, engine.ErrConflict) {
			t.Fatalf("write %d by the old owner: %v, want ErrFenced (an ErrConflict)", i, err)
		}
	}
	if got := keys(replayed(t, taker)); got != "a,b" {
		t.Fatalf("replay by the new owner = %s, want a,b", got)
	}
	mustAppend(t, taker, put("c", 1))
	if got := keys(replayed(t, openJournal(t, eng, "dfd", 0))); got != "a,b,c" {
		t.Fatalf("replay = %s, want a,b,c", got)
	}
	for _, n := range stateConfigs(eng) {
		if strings.Contains(n, "snapshot") {
			t.Errorf("the fenced daemon left %s", n)
		}
	}
}

// A fenced daemon's entry, complete but never committed, sits at the seq
// the new owner writes next: only the new owner's is replayed.
func TestJournalZombieEntryNotReplayed(t *testing.T) {
	eng := fake.NewSwarm()
	old := openJournal(t, eng, "dfd", 0)
	mustAppend(t, old, put("a", 1))
	// The old owner has written its next entry (as its Append would) but
	// not committed it when the taker reads the journal.
	tag := "0badc0de"
	l := old.labels(stateEntry)
	l[labelSeq], l[labelTag], l[labelPart], l[labelParts], l[labelPrev] = "2", tag, "0", "1", old.tag
	data := []byte(`[{"o":"put","b":"functions","k":"em9tYmll"}]`)
	sum := sha256.Sum256(data)
	l[labelSum] = hex.EncodeToString(sum[:])
	if _, err := eng.CreateConfig(context.Background(), old.partName(stateEntry, 2, tag, 0), l, data); err != nil {
		t.Fatal(err)
	}
	taker := openJournal(t, eng, "dfd", 0)
	if got := keys(replayed(t, taker)); got != "a" {
		t.Fatalf("replay = %s, want a", got)
	}
	if err := old.Append(context.Background(), put("zombie", 1)); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie append: %v, want ErrFenced", err)
	}
	mustAppend(t, taker, put("b", 1))
	if got := keys(replayed(t, openJournal(t, eng, "dfd", 0))); got != "a,b" {
		t.Fatalf("replay = %s, want a,b", got)
	}
}

func TestJournalSnapshot(t *testing.T) {
	eng := fake.NewSwarm()
	j := openJournal(t, eng, "dfd", 128)
	for _, k := range []string{"a", "b", "c"} {
		mustAppend(t, j, put(k, 50))
	}
	if j.Len() != 3 {
		t.Fatalf("Len = %d, want 3", j.Len())
	}
	state := append(append(put("a", 50), put("b", 50)...), put("c", 300)...) // several parts
	mustSnapshot(t, j, state)
	if j.Len() != 0 {
		t.Fatalf("Len after the snapshot = %d, want 0", j.Len())
	}
	for _, n := range stateConfigs(eng) {
		if !strings.Contains(n, "-snapshot-000000000003-") {
			t.Errorf("left after the snapshot: %s", n)
		}
	}
	mustAppend(t, j, put("d", 1))
	mustAppend(t, j, put("e", 1))
	want := [][]store.Op{state, put("d", 1), put("e", 1)}
	if got := replayed(t, j); !reflect.DeepEqual(got, want) {
		t.Fatalf("replay = %s, want %s", keys(got), keys(want))
	}
	j2 := openJournal(t, eng, "dfd", 128)
	if got := replayed(t, j2); !reflect.DeepEqual(got, want) {
		t.Fatalf("replay after a restart = %s, want %s", keys(got), keys(want))
	}
	if j2.Len() != 2 {
		t.Fatalf("Len after a restart = %d, want 2", j2.Len())
	}
	// A second snapshot replaces the first; a third at the same seq (no
	// append between) is told apart by its tag.
	for range 2 {
		mustSnapshot(t, j2, put("s", 10))
	}
	if got := stateConfigs(eng); len(got) != 1 || !strings.Contains(got[0], "-snapshot-000000000005-") {
		t.Fatalf("configs = %v, want one snapshot at 5", got)
	}
	if got := keys(replayed(t, openJournal(t, eng, "dfd", 128))); got != "s" {
		t.Fatalf("replay = %s, want s", got)
	}
}

// The store may seed an empty journal with the state it has.
func TestJournalSnapshotOfEmptyJournal(t *testing.T) {
	eng := fake.NewSwarm()
	j := openJournal(t, eng, "dfd", 0)
	mustSnapshot(t, j, put("seed", 5))
	mustAppend(t, j, put("a", 1))
	if got := keys(replayed(t, openJournal(t, eng, "dfd", 0))); got != "seed,a" {
		t.Fatalf("replay = %s, want seed,a", got)
	}
}

func TestJournalSnapshotFailureKeepsEntries(t *testing.T) {
	eng := fake.NewSwarm()
	j := openJournal(t, eng, "dfd", 64)
	mustAppend(t, j, put("a", 1))
	f := once("create-config", "-snapshot-")
	eng.Fail = f
	if err := j.Snapshot(context.Background(), put("a", 200)); err == nil {
		t.Fatal("snapshot succeeded")
	}
	eng.Fail = nil
	if j.Len() != 1 {
		t.Fatalf("Len = %d, want 1", j.Len())
	}
	if got := keys(replayed(t, openJournal(t, eng, "dfd", 64))); got != "a" {
		t.Fatalf("replay = %s, want a", got)
	}
}

func TestJournalRestartResumes(t *testing.T) {
	eng := fake.NewSwarm()
	j := openJournal(t, eng, "dfd", 0)
	mustAppend(t, j, put("a", 1))
	mustAppend(t, j, put("b", 1))
	for i := range 3 {
		j = openJournal(t, eng, "dfd", 0)
		if j.Len() != 2+i {
			t.Fatalf("restart %d: Len = %d, want %d", i, j.Len(), 2+i)
		}
		mustAppend(t, j, put(fmt.Sprintf("r%d", i), 1))
		if want := fmt.Sprintf("dfd-state-%012d-%s", 3+i, j.tag); !contains(eng.ConfigNames(), want) {
			t.Fatalf("restart %d: no config %s in %v", i, want, eng.ConfigNames())
		}
	}
	if got := keys(replayed(t, j)); got != "a,b,r0,r1,r2" {
		t.Fatalf("replay = %s", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A committed entry that is gone cannot be skipped: Replay fails.
func TestJournalMissingCommittedEntry(t *testing.T) {
	eng := fake.NewSwarm()
	j := openJournal(t, eng, "dfd", 0)
	mustAppend(t, j, put("a", 1))
	mustAppend(t, j, put("b", 1))
	if !eng.RemoveConfigBehindBack(stateConfigs(eng)[0]) {
		t.Fatal("nothing removed")
	}
	err := openJournal(t, eng, "dfd", 0).Replay(context.Background(), func([]store.Op) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "entry 1") {
		t.Fatalf("replay: %v, want an error about entry 1", err)
	}
}

func TestJournalLongInstance(t *testing.T) {
	eng := fake.NewSwarm()
	inst := strings.Repeat("long-instance-name", 4)
	j := openJournal(t, eng, inst, 64)
	mustAppend(t, j, put("a", 200))
	mustSnapshot(t, j, put("a", 200))
	for _, n := range eng.ConfigNames() {
		if len(n) > 64 {
			t.Errorf("name %q is over 64 characters", n)
		}
	}
	if got := keys(replayed(t, openJournal(t, eng, inst, 64))); got != "a" {
		t.Fatalf("replay = %s", got)
	}
}

// Two daemons taking over at once: the one whose swap of the head loses
// reads it again and retries, and ends up the owner (the newest wins).
func TestJournalTakeoverRetries(t *testing.T) {
	eng := fake.NewSwarm()
	first := openJournal(t, eng, "dfd", 0)
	mustAppend(t, first, put("a", 1))
	var n atomic.Int32
	eng.Fail = func(op, arg string) error {
		if op == "update-config" && n.Add(1) == 1 {
			return fmt.Errorf("update config %s: update out of sequence: %w", arg, engine.ErrConflict)
		}
		return nil
	}
	second := openJournal(t, eng, "dfd", 0)
	eng.Fail = nil
	if n.Load() < 2 {
		t.Fatalf("%d head updates, want a retry", n.Load())
	}
	mustAppend(t, second, put("b", 1))
	if err := first.Append(context.Background(), put("c", 1)); !errors.Is(err, ErrFenced) {
		t.Fatalf("first owner: %v, want ErrFenced", err)
	}
	if got := keys(replayed(t, openJournal(t, eng, "dfd", 0))); got != "a,b" {
		t.Fatalf("replay = %s, want a,b", got)
	}
}

// A daemon that writes nothing still learns that it was replaced (or that
// its journal was removed): WatchOwner returns ErrFenced and Lost closes.
func TestJournalWatchOwner(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lose   func(t *testing.T, eng *fake.Swarm, j *Journal)
		fenced bool
	}{
		{"still the owner", func(*testing.T, *fake.Swarm, *Journal) {}, false},
		{"taken over", func(t *testing.T, eng *fake.Swarm, _ *Journal) { openJournal(t, eng, "dfd", 0) }, true},
		{"head removed", func(t *testing.T, eng *fake.Swarm, j *Journal) {
			if err := eng.RemoveConfig(context.Background(), j.head.ID); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := fake.NewSwarm()
			j := openJournal(t, eng, "dfd", 0)
			mustAppend(t, j, put("a", 1))
			tc.lose(t, eng, j)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err := j.WatchOwner(ctx, time.Millisecond)
			if got := errors.Is(err, ErrFenced); got != tc.fenced {
				t.Fatalf("WatchOwner = %v; fenced %v, want %v", err, got, tc.fenced)
			}
			select {
			case <-j.Lost():
				if !tc.fenced {
					t.Fatal("Lost closed while still the owner")
				}
			default:
				if tc.fenced {
					t.Fatal("Lost not closed after the takeover")
				}
			}
			if tc.fenced {
				if err := j.Append(context.Background(), put("b", 1)); !errors.Is(err, ErrFenced) {
					t.Fatalf("append after the watch: %v, want ErrFenced", err)
				}
			}
		})
	}
}
