package controller

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/internal/promtest"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// TestControllerMetricsAtZero checks that every controller family is
// exported from the first scrape, and that the queue depth gauge reads the
// queue. Reconciles and drift being counted, and the runtime's own family
// (dockerfaasd_docker_errors_total), are checked against the Docker
// runtime by TestControllerMetrics in pkg/runtime/docker.
func TestControllerMetricsAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	log := logrus.New()
	log.SetOutput(io.Discard)
	// Nothing here reaches the runtime: enqueueing only queues.
	c := New(Config{Log: log}, store.NewMemory(), nil, proxy.NewCache(), status.NewBoard(), NewMetrics(reg))
	c.metrics.queueDepth(c.queue.Len)

	got := promtest.Gather(t, reg)
	for _, name := range []string{
		"dockerfaasd_reconcile_total{result=success}",
		"dockerfaasd_reconcile_total{result=requeue}",
		"dockerfaasd_reconcile_total{result=error}",
		"dockerfaasd_reconcile_total{result=terminal}",
		"dockerfaasd_reconcile_duration_seconds",
		"dockerfaasd_queue_depth",
		"dockerfaasd_drift_corrections_total{kind=replica_missing}",
		"dockerfaasd_drift_corrections_total{kind=orphan_removed}",
		"dockerfaasd_resync_keys_total{outcome=queued}",
		"dockerfaasd_resync_keys_total{outcome=unchanged}",
		"dockerfaasd_reconcile_panics_total",
	} {
		if v, ok := got[name]; !ok || v != 0 {
			t.Errorf("before any work: %s = %v (present %v), want 0", name, v, ok)
		}
	}

	c.Enqueue(store.DefaultNamespace + "/fn")
	if got := promtest.Gather(t, reg)["dockerfaasd_queue_depth"]; got != 1 {
		t.Errorf("queue depth with one key waiting = %v, want 1", got)
	}
}

// TestMetricLabelsAreKnown keeps the zero-initialised label lists of
// metrics.go in step with the values the package uses, so a new result,
// resync outcome or drift kind is exported at 0 from the start too. (The
// Docker runtime checks its own operations and drift kinds.)
func TestMetricLabelsAreKnown(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	// Literal label values passed to each family, by the field holding it.
	known := map[string][]string{"reconciles": reconcileResults, "resyncKeys": resyncOutcomes, "drift": driftKinds}
	checked := 0
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				// result names the outcome of a reconcile for reconciles.
				if n.Name.Name != "result" || n.Recv != nil {
					return true
				}
				ast.Inspect(n.Body, func(n ast.Node) bool {
					if ret, ok := n.(*ast.ReturnStmt); ok {
						for _, v := range ret.Results {
							if s, ok := stringLit(v); ok {
								checked++
								if !slices.Contains(reconcileResults, s) {
									t.Errorf("%s: result returns %q, which is missing from reconcileResults", file, s)
								}
							}
						}
					}
					return true
				})
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "WithLabelValues" || len(n.Args) != 1 {
					return true
				}
				field, ok := sel.X.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				s, ok := stringLit(n.Args[0])
				if !ok {
					return true
				}
				checked++
				list, ok := known[field.Sel.Name]
				if !ok {
					t.Errorf("%s: %s.WithLabelValues(%q) is a family this test does not know", file, field.Sel.Name, s)
				} else if !slices.Contains(list, s) {
					t.Errorf("%s: %s uses %q, which is not created at zero in metrics.go", file, field.Sel.Name, s)
				}
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no label value found; the test proves nothing")
	}
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}
