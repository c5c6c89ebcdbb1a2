package store_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
	"github.com/dockerfaasd/dockerfaasd/pkg/store/storetest"
)

func openBolt(t *testing.T, path string) *store.Bolt {
	t.Helper()
	s, err := store.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	})
}

func TestBoltOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "state.db")
	openBolt(t, path)
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700 | os.ModeDir}, {path, 0o600}} {
		st, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, st.Mode(), c.want)
		}
	}
}

func TestBoltReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.Create(ctx, types.FunctionDeployment{Service: fmt.Sprintf("fn-%d", i), Image: "img"}, 1); err != nil {
			t.Fatal(err)
		}
	}
	scaled, err := s.Scale(ctx, store.Key(store.DefaultNamespace, "fn-1"), 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, store.Key(store.DefaultNamespace, "fn-2")); err != nil {
		t.Fatal(err)
	}
	before, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openBolt(t, path)
	after, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mustJSON(t, after), mustJSON(t, before); !bytes.Equal(got, want) {
		t.Fatalf("after reopen:\n got  %s\n want %s", got, want)
	}
	// The revision sequence is persisted too: no revision is handed out twice.
	f, err := s.Scale(ctx, scaled.Key(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if f.Generation != scaled.Generation+1 || f.Revision <= scaled.Revision+1 {
		t.Errorf("write after reopen: generation %d revision %d, want %d and > %d", f.Generation, f.Revision, scaled.Generation+1, scaled.Revision+1)
	}
	if err := s.Check(); err != nil {
		t.Errorf("consistency check: %v", err)
	}
}

func TestBoltSecondOpenFailsFast(t *testing.T) {
	cases := []struct {
		name string
		open func(path string) (*store.Bolt, error)
	}{
		{"ShortTimeout", func(path string) (*store.Bolt, error) { return store.OpenWithTimeout(path, 100*time.Millisecond) }},
		{"Open", store.Open}, // proves Open itself sets a timeout (bbolt's default waits forever)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "state.db")
			first := openBolt(t, path)

			done := make(chan error, 1)
			go func() {
				second, err := c.open(path)
				if err == nil {
					_ = second.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, berrors.ErrTimeout) || !strings.Contains(err.Error(), "locked by another dockerfaasd") {
					t.Fatalf("second Open = %v, want a lock timeout that says so", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("second Open of a locked file hung")
			}
			if _, err := first.List(t.Context(), ""); err != nil {
				t.Errorf("first store after the failed second Open: %v", err)
			}
		})
	}
}

func TestBoltAfterClose(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ops := []struct {
		name string
		op   func() error
	}{
		{"Get", func() error { _, err := s.Get(t.Context(), "ns/fn"); return err }},
		{"List", func() error { _, err := s.List(t.Context(), ""); return err }},
		{"Create", func() error {
			_, err := s.Create(t.Context(), types.FunctionDeployment{Service: "fn", Image: "img"}, 1)
			return err
		}},
	}
	for _, o := range ops {
		if err := o.op(); !errors.Is(err, berrors.ErrDatabaseNotOpen) {
			t.Errorf("%s after Close = %v, want ErrDatabaseNotOpen", o.name, err)
		}
	}
}

func TestBoltRejectsUnknownSchema(t *testing.T) {
	for _, version := range []string{"2", "garbage"} {
		t.Run(version, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := store.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			plantSchema(t, path, version)
			if s, err := store.Open(path); err == nil || !strings.Contains(err.Error(), "schema") {
				if err == nil {
					_ = s.Close()
				}
				t.Fatalf("Open of a schema %q file = %v, want a schema version error", version, err)
			}
		})
	}
}

func plantSchema(t *testing.T, path, version string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(store.MetaBucket).Put(store.SchemaKey, []byte(version))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The crash test runs this test binary again as a child that writes until
// the parent SIGKILLs it, then checks that every write the child reported as
// acknowledged survived and the file is consistent. It repeats on the same
// file, so recovery from one crash is followed by more writes and another.
const (
	crashEnvPath   = "DOCKERFAASD_STORE_CRASH_DB"
	crashEnvRound  = "DOCKERFAASD_STORE_CRASH_ROUND"
	crashRounds    = 3
	crashKillAfter = 150     // acknowledged writes before the kill
	crashMaxWrites = 100_000 // the child's own bound, should the kill never come
	crashBound     = 2 * time.Minute
)

// TestHelperProcess is the crash test's child. It prints "ack <key>
// <replicas>" only after the write returned, so each line is a promise the
// store must keep.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(crashEnvPath)
	if path == "" {
		t.Skip("child process of TestBoltCrashKeepsAcknowledgedWrites")
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	s, err := store.Open(path)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	round := os.Getenv(crashEnvRound)
	for i := range crashMaxWrites {
		f, err := s.Create(ctx, crashSpec(round, i), 1)
		if err != nil {
			fail(err)
		}
		fmt.Printf("ack %s %d\n", f.Key(), f.Replicas)
		// Rewrite the record too, so the crash may hit an in-place update.
		if f, err = s.Scale(ctx, f.Key(), 2); err != nil {
			fail(err)
		}
		fmt.Printf("ack %s %d\n", f.Key(), f.Replicas)
	}
	os.Exit(0)
}

// crashSpec is big enough that the writes split pages and grow the file.
func crashSpec(round string, i int) types.FunctionDeployment {
	env := make(map[string]string, 8)
	for j := range 8 {
		env[fmt.Sprintf("VAR_%d", j)] = strings.Repeat("x", 64)
	}
	return types.FunctionDeployment{
		Service: fmt.Sprintf("r%s-fn-%05d", round, i),
		Image:   "ghcr.io/example/crash:1.0",
		EnvVars: env,
	}
}

func TestBoltCrashKeepsAcknowledgedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	acked := make(map[string]uint64)
	for round := range crashRounds {
		for k, replicas := range runAndKill(t, path, round) {
			acked[k] = replicas
		}

		s, err := store.Open(path)
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		if err := s.Check(); err != nil {
			t.Errorf("round %d: consistency check: %v", round, err)
		}
		for k, replicas := range acked {
			f, err := s.Get(t.Context(), k)
			if err != nil {
				t.Errorf("round %d: acknowledged %s lost: %v", round, k, err)
			} else if f.Replicas != replicas && (replicas != 1 || f.Replicas != 2) {
				// The child's Scale to 2 may have committed with its ack
				// line cut off by the kill: a write that was never
				// acknowledged may survive, an acknowledged one must.
				t.Errorf("round %d: %s has %d replicas, acknowledged %d", round, k, f.Replicas, replicas)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// runAndKill runs the helper against path and SIGKILLs it once it has
// acknowledged crashKillAfter writes. It returns every acknowledged key with
// its last acknowledged replicas, including those reported while the kill
// was on its way.
func runAndKill(t *testing.T, path string, round int) map[string]uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvPath+"="+path, crashEnvRound+"="+strconv.Itoa(round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Bounds the round even if the child stalls before acknowledging enough.
	timer := time.AfterFunc(crashBound, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()

	acked := make(map[string]uint64)
	n := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 || fields[0] != "ack" {
			continue
		}
		replicas, err := strconv.ParseUint(fields[2], 10, 64)
		if err != nil {
			t.Fatalf("bad ack line %q", sc.Text())
		}
		acked[fields[1]] = replicas
		if n++; n == crashKillAfter {
			_ = cmd.Process.Kill() // SIGKILL: no deferred code, no Close
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Exited() {
		t.Fatalf("round %d: helper ended with %v, want death by signal; stderr:\n%s", round, err, stderr.String())
	}
	if n < crashKillAfter {
		t.Fatalf("round %d: helper acknowledged only %d writes within %s; stderr:\n%s", round, n, crashBound, stderr.String())
	}
	return acked
}
