package docker

import (
	"context"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// TestLeakedNetworkOfDeletedFunction: Docker refuses to remove a deleted
// function's network for an endpoint it miscounted (Engine 20.10). The
// delete still completes, once warned about; the network is an orphan each
// resync tries again, and it goes once the engine recounted (restarted).
// Deployed again meanwhile, the function uses it; removed by hand, it is
// gone: either way it is no longer counted as leaked.
func TestLeakedNetworkOfDeletedFunction(t *testing.T) {
	for _, then := range []string{"engine restarts", "function deployed again", "network removed by hand"} {
		t.Run(then, func(t *testing.T) {
			f := newFixture(t)
			log, hook := logtest.NewNullLogger()
			cfg := f.rt.cfg
			cfg.Log = log
			f.wire(cfg, f.eng, nil)
			ctx := context.Background()

			key := f.deploy(deployment("fn"), 1)
			f.reconcile(key, 5)
			netName := f.rt.networkName("openfaas-fn", "fn")
			f.eng.LeakNetwork(netName)
			if err := f.st.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			f.reconcile(key, 5) // fails the test on an error
			if got := f.eng.NetworkNames(); !slices.Equal(got, []string{netName}) {
				t.Fatalf("networks after the delete: %v, want the leaked %s", got, netName)
			}
			if n := f.eng.Names(""); len(n) != 0 {
				t.Fatalf("containers left: %v", n)
			}
			if got := testutil.ToFloat64(f.rt.metrics.leakedNets); got != 1 {
				t.Errorf("leaked networks gauge = %v, want 1", got)
			}

			// Each resync finds the orphan and tries again, warning once.
			for i := 0; i < 3; i++ {
				if err := f.c.ResyncAll(ctx); err != nil {
					t.Fatal(err)
				}
				if got := f.queued(); !slices.Equal(got, []string{key}) {
					t.Fatalf("resync %d queued %q, want the orphan key %q", i, got, key)
				}
			}
			if got := warnings(hook); got != 1 {
				t.Errorf("%d warnings about the leaked network, want 1", got)
			}
			if n := f.c.Global().DriftCorrections["orphan_removed"]; n != 0 {
				t.Errorf("a network that stays counted as %d orphans removed", n)
			}

			switch then {
			case "function deployed again":
				key = f.deploy(deployment("fn"), 1)
				f.reconcile(key, 5)
				if got := f.running(""); len(got) != 1 {
					t.Fatalf("running replicas: %v, want 1", got)
				}
				if got := testutil.ToFloat64(f.rt.metrics.leakedNets); got != 0 {
					t.Errorf("leaked networks gauge = %v with the network in use again, want 0", got)
				}
				return
			case "network removed by hand":
				f.eng.RemoveNetworkBehindBack(netName)
				if err := f.c.ResyncAll(ctx); err != nil {
					t.Fatal(err)
				}
				if got := f.queued(); len(got) != 0 {
					t.Errorf("resync queued %q with nothing of the function left", got)
				}
				if got := testutil.ToFloat64(f.rt.metrics.leakedNets); got != 0 {
					t.Errorf("leaked networks gauge = %v with the network gone, want 0", got)
				}
				return
			}
			f.eng.Recount()
			if err := f.c.ResyncAll(ctx); err != nil {
				t.Fatal(err)
			}
			f.queued()
			if got := f.eng.NetworkNames(); len(got) != 0 {
				t.Fatalf("networks once the engine recounted: %v, want none", got)
			}
			if got := testutil.ToFloat64(f.rt.metrics.leakedNets); got != 0 {
				t.Errorf("leaked networks gauge = %v, want 0", got)
			}
		})
	}
}

func warnings(hook *logtest.Hook) int {
	n := 0
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			n++
		}
	}
	return n
}
