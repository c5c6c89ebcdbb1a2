package controller

import (
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

func TestSpecHashIncludesSecretRevisions(t *testing.T) {
	spec := types.FunctionDeployment{Service: "fn", Image: "example/fn:1", Secrets: []string{"a", "b"}}
	a1, a2 := store.SecretInfo{Name: "a", Revision: 1}, store.SecretInfo{Name: "a", Revision: 7}
	b3 := store.SecretInfo{Name: "b", Revision: 3}
	base := SpecHash(spec, a1, b3)
	if SpecHash(spec, b3, a1) != base {
		t.Error("the order of the secrets changes the hash")
	}
	if SpecHash(spec, a2, b3) == base {
		t.Error("a new revision of a secret does not change the hash")
	}
	if SpecHash(spec) == base {
		t.Error("the hash ignores the secret revisions")
	}
	// A value is never hashed: two secrets at the same revisions hash the
	// same whatever the values (which SpecHash never sees).
	if SpecHash(spec, store.SecretInfo{Name: "a", Revision: 1, UpdatedAt: time.Now()}, b3) != base {
		t.Error("the hash depends on more than name and revision")
	}
	// Functions without secrets keep the hash they had before secrets
	// existed, so an upgrade rolls nothing.
	plain := types.FunctionDeployment{Service: "fn", Image: "example/fn:1"}
	if SpecHash(plain) != SpecHash(plain, []store.SecretInfo{}...) {
		t.Error("no secrets and an empty list hash differently")
	}
}
