package api

import (
	"encoding/json"
	"maps"
	"testing"
)

// TestJobModeDeployed: with a runtime that runs jobs, a job-mode function
// (and its concurrency) is stored as deployed, by POST and PUT alike.
func TestJobModeDeployed(t *testing.T) {
	for _, ann := range []string{
		`{"io.dockerfaas.mode":"job"}`,
		`{"io.dockerfaas.mode":"job","io.dockerfaas.job.concurrency":"3"}`,
		`{"io.dockerfaas.mode":"replicas"}`,
	} {
		t.Run(ann, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.JobMode = true })
			body := with(t, "annotations", ann)
			if w := f.do(t, "POST", "/system/functions", body); w.Code != 202 {
				t.Fatalf("POST %d %q", w.Code, w.Body.String())
			}
			if w := f.do(t, "PUT", "/system/functions", body); w.Code != 202 {
				t.Fatalf("PUT %d %q", w.Code, w.Body.String())
			}
			var want map[string]string
			if err := json.Unmarshal([]byte(ann), &want); err != nil {
				t.Fatal(err)
			}
			fn := f.get(t, "openfaas-fn/hello")
			if fn.Spec.Annotations == nil || !maps.Equal(*fn.Spec.Annotations, want) {
				t.Errorf("stored annotations %v, want %v", fn.Spec.Annotations, want)
			}
		})
	}
}
