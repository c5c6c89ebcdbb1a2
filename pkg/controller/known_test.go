package controller

import (
	"context"
	"testing"
)

// TestMarkStoredKnown checks that a fresh controller (a restarted daemon)
// makes stored functions routable before any reconcile ran.
func TestMarkStoredKnown(t *testing.T) {
	f := newRTFixture(t)
	key := f.deploy("fn", 1)
	f2 := newRTFixture(t)
	f2.c = New(f.c.cfg, f.st, f2.rt, f2.cache, f2.board, nil)
	if _, known := f2.cache.Lookup(key); known {
		t.Fatal("known before MarkStoredKnown; the test proves nothing")
	}
	if err := f2.c.MarkStoredKnown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if eps, known := f2.cache.Lookup(key); !known || len(eps) != 0 {
		t.Fatalf("after MarkStoredKnown: known=%v endpoints=%v, want known with none yet", known, eps)
	}
	if n := len(f2.rt.Syncs()); n != 0 {
		t.Errorf("MarkStoredKnown made %d syncs; it must only mark", n)
	}
}
