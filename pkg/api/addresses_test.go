package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// TestFunctionAddressAnnotation: with AddressPort set, list and describe
// show a function's address from the store as the io.dockerfaas.address
// annotation (the port left out when 80), next to the submitted ones and
// never stored; a function without an allocation, or a router without the
// feature, shows none.
func TestFunctionAddressAnnotation(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		port int
		want string // "" means no annotation
	}{
		{"port 80", 80, "http://127.77.0.1/"},
		{"other port", 8081, "http://127.77.0.1:8081/"},
		{"feature off", 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(cfg *Config) { cfg.AddressPort = c.port })
			f.deploy(t, `{"service":"with","image":"img","annotations":{"topic":"t"}}`)
			f.deploy(t, `{"service":"without","image":"img"}`)
			key := store.Key(store.DefaultNamespace, "with")
			if _, err := f.store.AllocateAddress(ctx, key, netip.MustParsePrefix("127.77.0.0/29")); err != nil {
				t.Fatal(err)
			}

			w := f.do(t, http.MethodGet, "/system/function/with", "")
			var one types.FunctionStatus
			if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &one) != nil {
				t.Fatalf("describe: %d %s", w.Code, w.Body)
			}
			checkAddress(t, "describe with", one, c.want, map[string]string{"topic": "t"})

			w = f.do(t, http.MethodGet, "/system/functions", "")
			var list []types.FunctionStatus
			if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &list) != nil || len(list) != 2 {
				t.Fatalf("list: %d %s", w.Code, w.Body)
			}
			checkAddress(t, "list with", list[0], c.want, map[string]string{"topic": "t"})
			checkAddress(t, "list without", list[1], "", nil)

			if ann := f.get(t, key).Spec.Annotations; ann == nil || len(*ann) != 1 {
				t.Errorf("the stored spec changed: annotations %v", ann)
			}
		})
	}
}

// checkAddress asserts st's address annotation (absent for want "") and
// that the submitted annotations are all there.
func checkAddress(t *testing.T, what string, st types.FunctionStatus, want string, submitted map[string]string) {
	t.Helper()
	var ann map[string]string
	if st.Annotations != nil {
		ann = *st.Annotations
	}
	got, ok := ann[AnnotationAddress]
	switch {
	case want == "" && ok:
		t.Errorf("%s: annotation %s = %q, want none", what, AnnotationAddress, got)
	case want != "" && got != want:
		t.Errorf("%s: annotation %s = %q, want %q", what, AnnotationAddress, got, want)
	}
	for k, v := range submitted {
		if ann[k] != v {
			t.Errorf("%s: annotation %s = %q, want %q (as submitted)", what, k, ann[k], v)
		}
	}
}
