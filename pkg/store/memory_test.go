package store_test

import (
	"testing"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
	"github.com/dockerfaasd/dockerfaasd/pkg/store/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := store.NewMemory()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
