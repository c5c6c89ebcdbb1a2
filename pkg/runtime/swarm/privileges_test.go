package swarm

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
)

// oldEngine is the fake swarm answering as an engine older than API 1.46
// does: it accepts ContainerSpec.Privileges.NoNewPrivileges and stores the
// service without it.
type oldEngine struct{ *fake.Swarm }

func dropNNP(svc swarm.Service) swarm.Service {
	if cs := svc.Spec.TaskTemplate.ContainerSpec; cs != nil {
		c := *cs // the fake's own copy stays as it was
		c.Privileges = &swarm.Privileges{}
		svc.Spec.TaskTemplate.ContainerSpec = &c
	}
	return svc
}

func (e oldEngine) InspectService(ctx context.Context, id string) (swarm.Service, error) {
	svc, err := e.Swarm.InspectService(ctx, id)
	return dropNNP(svc), err
}

func (e oldEngine) ListServices(ctx context.Context, labels map[string]string) ([]swarm.Service, error) {
	svcs, err := e.Swarm.ListServices(ctx, labels)
	for i := range svcs {
		svcs[i] = dropNNP(svcs[i])
	}
	return svcs, err
}

func warnings(hook *logtest.Hook) []string {
	var out []string
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			out = append(out, e.Message)
		}
	}
	return out
}

// An engine that silently drops no-new-privileges gets one warning per
// process, and the field it cannot keep is no reason to update the service
// on every Sync.
func TestEngineDroppingNoNewPrivilegesIsWarnedOnce(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	log, hook := logtest.NewNullLogger()
	r := New(Config{Instance: "dfd", Self: "self0", Prober: &fakeProber{}, Log: log, SettleTimeout: 100 * time.Millisecond}, oldEngine{eng})

	d := fn(1, "hash000001")
	if obs := mustSync(t, r, d); !obs.Converged {
		t.Fatalf("obs = %+v", obs)
	}
	other := fn(1, "hash000002")
	other.Key, other.Name, other.Spec.Service = "openfaas-fn/other", "other", "other"
	mustSync(t, r, other)
	eng.ResetActions()
	mustSync(t, r, d)
	if acts := eng.Actions(); len(acts) != 0 {
		t.Errorf("a Sync at the desired state changed swarm: %v", acts)
	}

	ws := warnings(hook)
	if len(ws) != 1 || !strings.Contains(ws[0], "no-new-privileges") {
		t.Errorf("warnings %q, want exactly one about no-new-privileges", ws)
	}
}

// An engine that keeps the field gets no warning.
func TestEngineKeepingNoNewPrivilegesIsNotWarned(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	log, hook := logtest.NewNullLogger()
	r := New(Config{Instance: "dfd", Self: "self0", Prober: &fakeProber{}, Log: log, SettleTimeout: 100 * time.Millisecond}, eng)
	mustSync(t, r, fn(1, "hash000001"))
	if ws := warnings(hook); len(ws) != 0 {
		t.Errorf("warnings %q, want none", ws)
	}
}
