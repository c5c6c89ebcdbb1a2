package docker

import (
	"context"
	"math"
	"testing"
	"time"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

func TestUsageSumsReplicasAndMeasuresCPUBetweenSamples(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("fn"), 2)
	f.reconcile(key, 5)
	u := f.rt

	list, _ := f.eng.ListContainers(context.Background(), nil)
	if len(list) != 2 {
		t.Fatalf("containers = %d", len(list))
	}
	for _, c := range list {
		// 100 ms of CPU over the first second since creation.
		f.eng.SetStats(c.ID, engine.Stats{CPUTotal: 100 * time.Millisecond, Memory: 10 << 20, Read: c.Created.Add(time.Second)})
	}
	got, err := u.Usage(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if got.TotalMemoryBytes != 20<<20 {
		t.Errorf("memory = %v, want %v", got.TotalMemoryBytes, 20<<20)
	}
	if math.Abs(got.CPU-200) > 1 { // 2 replicas × 100 millicores since start
		t.Errorf("first cpu = %v millicores, want ~200", got.CPU)
	}

	// Second sample: 500 ms more CPU over 1 s on each replica → 500m each.
	for _, c := range list {
		f.eng.SetStats(c.ID, engine.Stats{CPUTotal: 600 * time.Millisecond, Memory: 5 << 20, Read: c.Created.Add(2 * time.Second)})
	}
	got, err = u.Usage(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got.CPU-1000) > 1 {
		t.Errorf("cpu since last sample = %v millicores, want ~1000", got.CPU)
	}

	// A stopped replica is not counted.
	f.eng.SetState(list[0].ID, engine.StateExited)
	got, _ = u.Usage(context.Background(), key)
	if got.TotalMemoryBytes != 5<<20 {
		t.Errorf("memory with one replica down = %v", got.TotalMemoryBytes)
	}
}
