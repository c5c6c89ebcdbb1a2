package store_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// benchFunctions is how many functions the read benchmarks keep in the store.
const benchFunctions = 1000

// benchSpec is a realistic faas-cli deployment, so encoding costs are real.
func benchSpec(i int) types.FunctionDeployment {
	return types.FunctionDeployment{
		Service:     fmt.Sprintf("fn-%05d", i),
		Image:       "ghcr.io/example/fn:1.0",
		EnvProcess:  "./handler",
		EnvVars:     map[string]string{"write_timeout": "10s", "read_timeout": "10s", "exec_timeout": "10s"},
		Secrets:     []string{"api-key"},
		Labels:      &map[string]string{"com.openfaas.scale.min": "1", "team": "a"},
		Annotations: &map[string]string{"topic": "orders"},
		Limits:      &types.FunctionResources{Memory: "128Mi", CPU: "500m"},
	}
}

func openBenchBolt(b *testing.B) *store.Bolt {
	b.Helper()
	s, err := store.Open(filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// seed creates n functions and returns their keys.
func seed(b *testing.B, s store.Store, n int) []string {
	b.Helper()
	keys := make([]string, n)
	for i := range n {
		f, err := s.Create(b.Context(), benchSpec(i), 1)
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = f.Key()
	}
	return keys
}

// BenchmarkBoltPut measures one durable write: a create, committed and fsynced.
func BenchmarkBoltPut(b *testing.B) {
	s := openBenchBolt(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Create(b.Context(), benchSpec(i), 1); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func benchmarkGet(b *testing.B, s store.Store) {
	keys := seed(b, s, benchFunctions)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Get(b.Context(), keys[i%len(keys)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkBoltGet measures one read among benchFunctions functions.
func BenchmarkBoltGet(b *testing.B) { benchmarkGet(b, openBenchBolt(b)) }

// BenchmarkMemoryGet is BenchmarkBoltGet's baseline: the same decode without
// bbolt, so the difference is the cost of the read transaction.
func BenchmarkMemoryGet(b *testing.B) { benchmarkGet(b, store.NewMemory()) }

// BenchmarkBoltList measures listing all benchFunctions functions.
func BenchmarkBoltList(b *testing.B) {
	s := openBenchBolt(b)
	seed(b, s, benchFunctions)
	b.ReportAllocs()
	for b.Loop() {
		fns, err := s.List(b.Context(), "")
		if err != nil {
			b.Fatal(err)
		}
		if len(fns) != benchFunctions {
			b.Fatalf("List = %d functions, want %d", len(fns), benchFunctions)
		}
	}
}
