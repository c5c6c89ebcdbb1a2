package storetest

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// addressTests run against stores with the namespaces the suite uses.
var addressTests = []struct {
	name string
	fn   func(t *testing.T, open opener)
}{
	{"AddressesAllocate", testAddressesAllocate},
	{"AddressesExhausted", testAddressesExhausted},
	{"AddressesRefused", testAddressesRefused},
	{"AddressesOtherPrefix", testAddressesOtherPrefix},
	{"AddressesRelease", testAddressesRelease},
	{"AddressesCancelledContext", testAddressesCancelledContext},
	{"AddressesWakeNoOne", testAddressesWakeNoOne},
}

func mustAllocate(t *testing.T, s store.Store, k string, p netip.Prefix) netip.Addr {
	t.Helper()
	a, err := s.AllocateAddress(t.Context(), k, p)
	if err != nil {
		t.Fatalf("AllocateAddress(%s, %s): %v", k, p, err)
	}
	return a
}

func mustListAddresses(t *testing.T, s store.Store) map[string]store.AddressAllocation {
	t.Helper()
	list, err := s.ListAddresses(t.Context())
	if err != nil {
		t.Fatalf("ListAddresses: %v", err)
	}
	if list == nil {
		t.Fatal("ListAddresses returned nil, want an empty list")
	}
	out := make(map[string]store.AddressAllocation, len(list))
	for i, a := range list {
		if i > 0 && list[i-1].Key >= a.Key {
			t.Errorf("ListAddresses not sorted by key: %q before %q", list[i-1].Key, a.Key)
		}
		out[a.Key] = a
	}
	return out
}

// testAddressesAllocate: the lowest free address, skipping the network
// address even when the CIDR is given unmasked; idempotent without a
// write; a released address is the next one handed out.
func testAddressesAllocate(t *testing.T, open opener) {
	s := open(t)
	for _, n := range []string{"a", "b", "c"} {
		mustCreate(t, s, spec("", n), 1)
	}
	p := netip.MustParsePrefix("10.77.0.5/29") // unmasked on purpose
	a, b, c := key("", "a"), key("", "b"), key("", "c")

	steps := []struct {
		key  string
		want string
	}{
		{a, "10.77.0.1"},
		{a, "10.77.0.1"}, // again: the same
		{b, "10.77.0.2"},
	}
	for _, st := range steps {
		if got := mustAllocate(t, s, st.key, p); got.String() != st.want {
			t.Fatalf("AllocateAddress(%s) = %s, want %s", st.key, got, st.want)
		}
	}
	before := mustListAddresses(t, s)
	if len(before) != 2 || before[a].Address.String() != "10.77.0.1" || before[a].AllocatedAt.IsZero() {
		t.Fatalf("ListAddresses = %+v", before)
	}
	mustAllocate(t, s, a, p)
	if after := mustListAddresses(t, s); !after[a].AllocatedAt.Equal(before[a].AllocatedAt) {
		t.Errorf("an allocation that exists was written again: %v then %v", before[a].AllocatedAt, after[a].AllocatedAt)
	}
	got, err := s.GetAddress(t.Context(), b)
	if err != nil || got.Key != b || got.Address.String() != "10.77.0.2" {
		t.Errorf("GetAddress(%s) = %+v, %v", b, got, err)
	}

	if err := s.ReleaseAddress(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if got := mustAllocate(t, s, c, p); got.String() != "10.77.0.1" {
		t.Errorf("after a release, AllocateAddress(%s) = %s, want the freed 10.77.0.1", c, got)
	}
}

// testAddressesExhausted: a /30 has two usable addresses (never the network
// nor the broadcast address); a third function gets a sentinel error and no
// record.
func testAddressesExhausted(t *testing.T, open opener) {
	s := open(t)
	p := netip.MustParsePrefix("10.78.0.0/30")
	var got []string
	for _, n := range []string{"x", "y", "z"} {
		mustCreate(t, s, spec("", n), 1)
	}
	for _, n := range []string{"x", "y"} {
		got = append(got, mustAllocate(t, s, key("", n), p).String())
	}
	if !equal(got, []string{"10.78.0.1", "10.78.0.2"}) {
		t.Errorf("a /30 handed out %v, want 10.78.0.1 and 10.78.0.2", got)
	}
	_, err := s.AllocateAddress(t.Context(), key("", "z"), p)
	if !errors.Is(err, store.ErrAddressesExhausted) {
		t.Fatalf("AllocateAddress in a full CIDR = %v, want ErrAddressesExhausted", err)
	}
	if _, ok := mustListAddresses(t, s)[key("", "z")]; ok {
		t.Error("a failed allocation was stored")
	}
	// Another CIDR still has room.
	if a := mustAllocate(t, s, key("", "z"), netip.MustParsePrefix("10.79.0.0/30")); a.String() != "10.79.0.1" {
		t.Errorf("in another CIDR: %s", a)
	}
}

// testAddressesRefused: no address for a function that does not exist, nor
// from a CIDR that is not IPv4 or leaves fewer than two usable addresses.
func testAddressesRefused(t *testing.T, open opener) {
	s := open(t)
	mustCreate(t, s, spec("", "f"), 1)
	cases := []struct {
		name   string
		key    string
		prefix netip.Prefix
		want   error // nil: any error
	}{
		{"unknown function", key("", "nope"), netip.MustParsePrefix("10.80.0.0/24"), store.ErrNotFound},
		{"IPv6", key("", "f"), netip.MustParsePrefix("fd00::/64"), nil},
		{"/31", key("", "f"), netip.MustParsePrefix("10.80.0.0/31"), nil},
		{"/32", key("", "f"), netip.MustParsePrefix("10.80.0.1/32"), nil},
		{"zero prefix", key("", "f"), netip.Prefix{}, nil},
	}
	for _, c := range cases {
		_, err := s.AllocateAddress(t.Context(), c.key, c.prefix)
		switch {
		case err == nil:
			t.Errorf("%s: allocated", c.name)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if list := mustListAddresses(t, s); len(list) != 0 {
		t.Errorf("refused allocations stored %+v", list)
	}
}

// testAddressesOtherPrefix: when the CIDR changes, a function's address
// outside it is replaced by one inside; addresses other functions hold
// outside the new CIDR take nothing from it.
func testAddressesOtherPrefix(t *testing.T, open opener) {
	s := open(t)
	mustCreate(t, s, spec("", "f"), 1)
	mustCreate(t, s, spec("", "g"), 1)
	old, cur := netip.MustParsePrefix("10.81.0.0/29"), netip.MustParsePrefix("10.82.0.0/29")
	mustAllocate(t, s, key("", "f"), old)
	mustAllocate(t, s, key("", "g"), old)
	if a := mustAllocate(t, s, key("", "g"), cur); a.String() != "10.82.0.1" {
		t.Errorf("g moved to %s, want 10.82.0.1", a)
	}
	list := mustListAddresses(t, s)
	if got := list[key("", "g")].Address.String(); got != "10.82.0.1" {
		t.Errorf("g's record holds %s, want 10.82.0.1", got)
	}
	if got := list[key("", "f")].Address.String(); got != "10.81.0.1" {
		t.Errorf("f's record holds %s, want 10.81.0.1 (untouched)", got)
	}
}

// testAddressesRelease: releasing twice, or what was never allocated, is
// no error; a released address is gone from Get and List.
func testAddressesRelease(t *testing.T, open opener) {
	s := open(t)
	mustCreate(t, s, spec("", "f"), 1)
	k := key("", "f")
	mustAllocate(t, s, k, netip.MustParsePrefix("10.83.0.0/24"))
	for i := range 2 {
		if err := s.ReleaseAddress(t.Context(), k); err != nil {
			t.Fatalf("ReleaseAddress #%d: %v", i+1, err)
		}
	}
	if err := s.ReleaseAddress(t.Context(), key("", "never")); err != nil {
		t.Errorf("ReleaseAddress of nothing: %v", err)
	}
	if _, err := s.GetAddress(t.Context(), k); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAddress after release = %v, want ErrNotFound", err)
	}
	if list := mustListAddresses(t, s); len(list) != 0 {
		t.Errorf("after release: %+v", list)
	}
}

func testAddressesCancelledContext(t *testing.T, open opener) {
	s := open(t)
	mustCreate(t, s, spec("", "f"), 1)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p := netip.MustParsePrefix("10.84.0.0/24")
	if _, err := s.AllocateAddress(ctx, key("", "f"), p); !errors.Is(err, context.Canceled) {
		t.Errorf("AllocateAddress = %v, want context.Canceled", err)
	}
	if err := s.ReleaseAddress(ctx, key("", "f")); !errors.Is(err, context.Canceled) {
		t.Errorf("ReleaseAddress = %v, want context.Canceled", err)
	}
	if _, err := s.ListAddresses(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ListAddresses = %v, want context.Canceled", err)
	}
	if _, err := s.GetAddress(ctx, key("", "f")); !errors.Is(err, context.Canceled) {
		t.Errorf("GetAddress = %v, want context.Canceled", err)
	}
}

// testAddressesWakeNoOne: allocating and releasing change no function, so
// they must not make the controller (or the listeners) look at anything.
func testAddressesWakeNoOne(t *testing.T, open opener) {
	s := open(t)
	mustCreate(t, s, spec("", "f"), 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := s.Watch(ctx)
	k := key("", "f")
	mustAllocate(t, s, k, netip.MustParsePrefix("10.85.0.0/24"))
	if err := s.ReleaseAddress(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	expectQuiet(t, s, w)
}
