package docker

import (
	"context"
	"slices"
	"strings"
	"testing"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/function"
)

// SweepBuildTests removes the build test containers and networks of this
// instance an earlier daemon left, and nothing else.
func TestSweepBuildTests(t *testing.T) {
	eng := fake.New()
	r := New(Config{Instance: "test-inst"}, eng)
	mine := function.OwnerLabels("test-inst", "", "")
	mine[engine.LabelRole] = RoleBuildTest
	other := function.OwnerLabels("other-inst", "", "")
	other[engine.LabelRole] = RoleBuildTest
	replica := function.OwnerLabels("test-inst", "openfaas-fn", "fn")
	for _, c := range []engine.Container{
		{ID: strings.Repeat("a", 64), Name: "test-inst-build-1", Labels: mine, State: engine.StateRunning},
		{ID: strings.Repeat("b", 64), Name: "other-inst-build-1", Labels: other, State: engine.StateRunning},
		{ID: strings.Repeat("c", 64), Name: "test-inst-fn.openfaas-fn-x-0", Labels: replica, State: engine.StateRunning},
	} {
		eng.AddContainer(c)
	}
	eng.AddNetwork(engine.Network{ID: "n1", Name: "test-inst-build-1", Labels: mine})
	eng.AddNetwork(engine.Network{ID: "n2", Name: "other-inst-build-1", Labels: other})

	if err := r.SweepBuildTests(context.Background()); err != nil {
		t.Fatal(err)
	}
	left, err := eng.ListContainers(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range left {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	if want := []string{"other-inst-build-1", "test-inst-fn.openfaas-fn-x-0"}; !slices.Equal(names, want) {
		t.Errorf("containers left %v, want %v", names, want)
	}
	if nets := eng.NetworkNames(); !slices.Equal(nets, []string{"other-inst-build-1"}) {
		t.Errorf("networks left %v, want only the other instance's", nets)
	}
}
