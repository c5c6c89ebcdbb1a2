package fake

import "github.com/dockerfaasd/dockerfaasd/pkg/docker"

// AddNetwork plants a network as given, even one whose name is taken: a
// real Docker Engine can end up with two networks of one name when two
// creates race, which CreateNetwork never produces.
func (e *Engine) AddNetwork(n docker.Network) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cp := n
	cp.Labels = copyMap(n.Labels)
	cp.Containers = nil // derived from the containers' networks
	e.networks[n.ID] = &cp
}
