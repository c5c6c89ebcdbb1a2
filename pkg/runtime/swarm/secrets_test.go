package swarm

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// A function that stops listing a secret (a PUT without it, often after the
// secret was deleted) must not leave that secret's value in the swarm: its
// version goes once the roll is over and no service mounts it, as an old
// version does after a rotation.
func TestSecretDroppedFromSpecIsPruned(t *testing.T) {
	at := time.Unix(1700000000, 0)
	token := runtime.Secret{Name: "token", Value: []byte("t1"), UpdatedAt: at}
	other := runtime.Secret{Name: "other", Value: []byte("o1"), UpdatedAt: at}
	withSecrets := func(d runtime.Desired, gen int64, hash string, secrets ...runtime.Secret) runtime.Desired {
		d.Generation, d.Hash, d.Secrets, d.Spec.Secrets = gen, hash, secrets, nil
		for _, s := range secrets {
			d.Spec.Secrets = append(d.Spec.Secrets, s.Name)
		}
		return d
	}
	for _, tc := range []struct {
		name string
		// drop syncs echo without token (and does what the case is
		// about around it) until echo has converged, and returns
		// echo's last Desired.
		drop func(t *testing.T, r *Runtime, eng *fake.Swarm) runtime.Desired
		// left are the function secrets whose versions must remain.
		left []string
	}{{
		name: "PUT without the secret",
		drop: func(t *testing.T, r *Runtime, _ *fake.Swarm) runtime.Desired {
			d := withSecrets(fn(1, ""), 2, "hash000002", other)
			if obs := mustSync(t, r, d); !obs.Converged {
				t.Fatalf("obs %+v", obs)
			}
			return d
		},
		left: []string{"other"},
	}, {
		// The scale replaces the service's PreviousSpec, the only
		// trace swarm keeps of the dropped secret.
		name: "scaled before the roll is over",
		drop: func(t *testing.T, r *Runtime, eng *fake.Swarm) runtime.Desired {
			eng.Hold = true
			if obs := mustSync(t, r, withSecrets(fn(1, ""), 2, "hash000002", other)); obs.Converged {
				t.Fatalf("roll held, yet %+v", obs)
			}
			d := withSecrets(fn(2, ""), 3, "hash000002", other)
			if obs := mustSync(t, r, d); obs.Converged {
				t.Fatalf("roll held, yet %+v", obs)
			}
			// The old task still mounts it.
			if got := eng.SecretNames(); len(got) != 2 {
				t.Fatalf("during the roll: %v, want both versions", got)
			}
			eng.StartAll()
			if obs := mustSync(t, r, d); !obs.Converged {
				t.Fatalf("obs %+v", obs)
			}
			return d
		},
		left: []string{"other"},
	}, {
		name: "first removal fails",
		drop: func(t *testing.T, r *Runtime, eng *fake.Swarm) runtime.Desired {
			var failed atomic.Bool
			eng.Fail = func(op, _ string) error {
				if op == "remove-secret" && failed.CompareAndSwap(false, true) {
					return errors.New("manager busy")
				}
				return nil
			}
			d := withSecrets(fn(1, ""), 2, "hash000002", other)
			mustSync(t, r, d)
			if got := eng.SecretNames(); len(got) != 2 {
				t.Fatalf("after a failed removal: %v, want both versions still there", got)
			}
			mustSync(t, r, d)
			return d
		},
		left: []string{"other"},
	}, {
		name: "still mounted by another function",
		drop: func(t *testing.T, r *Runtime, _ *fake.Swarm) runtime.Desired {
			b := withSecrets(fn(1, ""), 1, "hash000001", token)
			b.Key, b.Name = "openfaas-fn/other", "other"
			mustSync(t, r, b)
			d := withSecrets(fn(1, ""), 2, "hash000002", other)
			mustSync(t, r, d)
			return d
		},
		left: []string{"other", "token"},
	}, {
		name: "every secret dropped",
		drop: func(t *testing.T, r *Runtime, _ *fake.Swarm) runtime.Desired {
			d := withSecrets(fn(1, ""), 2, "hash000002")
			mustSync(t, r, d)
			return d
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			eng := fake.NewSwarm(testImage)
			r, _ := newTest(t, eng)
			mustSync(t, r, withSecrets(fn(1, ""), 1, "hash000001", other, token))
			last := tc.drop(t, r, eng)
			var want []string
			for _, s := range []runtime.Secret{other, token} {
				if slices.Contains(tc.left, s.Name) {
					want = append(want, secretName("dfd", "openfaas-fn", s))
				}
			}
			slices.Sort(want)
			if got := eng.SecretNames(); !slices.Equal(got, want) {
				t.Errorf("swarm secrets %v, want %v", got, want)
			}
			// Nothing left to prune: the next Sync changes nothing.
			eng.ResetActions()
			if obs := mustSync(t, r, last); !obs.Converged {
				t.Errorf("again: %+v", obs)
			}
			if acts := eng.Actions(); len(acts) != 0 {
				t.Errorf("a Sync of a converged function did %v", acts)
			}
		})
	}
}
