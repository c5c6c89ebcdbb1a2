package runtime_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/openfaas/faas-provider/logs"
	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/fake"
)

// withLogsAndUsage is a runtime with two of the optional features.
type withLogsAndUsage struct{ *fake.Runtime }

func (withLogsAndUsage) Stream(context.Context, logs.Request, func(logs.Message) error) error {
	return nil
}

func (withLogsAndUsage) Usage(context.Context, string) (types.FunctionUsage, error) {
	return types.FunctionUsage{}, nil
}

func TestDiscover(t *testing.T) {
	tests := []struct {
		name        string
		rt          runtime.Runtime
		wantMissing []string
	}{
		{name: "bare runtime lacks every feature", rt: fake.New(),
			wantMissing: []string{"logs", "usage", "image load", "image inspect", "build", "run-once", "per-request isolation"}},
		{name: "features found by their methods", rt: withLogsAndUsage{fake.New()},
			wantMissing: []string{"image load", "image inspect", "build", "run-once", "per-request isolation"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caps := runtime.Discover(tt.rt)
			if got := caps.Missing(); !slices.Equal(got, tt.wantMissing) {
				t.Errorf("missing %v, want %v", got, tt.wantMissing)
			}
			if (caps.Logs == nil) != slices.Contains(tt.wantMissing, "logs") {
				t.Error("Logs field disagrees with Missing")
			}
		})
	}
}

func TestFailureCarriesItsReason(t *testing.T) {
	base := errors.New("no such image")
	err := runtime.Fail(runtime.ReasonImageNotAvailable, base)
	if runtime.ReasonOf(err) != runtime.ReasonImageNotAvailable || !errors.Is(err, base) || err.Error() != base.Error() {
		t.Errorf("Fail lost something: %v", err)
	}
	if runtime.Fail(runtime.ReasonInvalidSpec, nil) != nil {
		t.Error("Fail(nil) is not nil")
	}
	if runtime.ReasonOf(base) != "" {
		t.Error("a plain error has a reason")
	}
	if !errors.Is(runtime.NotSupported("build"), runtime.ErrNotSupported) {
		t.Error("NotSupported does not wrap ErrNotSupported")
	}
}
