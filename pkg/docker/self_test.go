package docker

import "testing"

func TestHostPath(t *testing.T) {
	mounts := []Mount{
		{Source: "/var/lib/docker/volumes/st/_data", Destination: "/var/lib/dockerfaasd"},
		{Source: "/srv/handoff", Destination: "/var/lib/dockerfaasd/handoff"},
		{Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock"},
	}
	for _, tc := range []struct {
		path, want string
		ok         bool
	}{
		{"/var/lib/dockerfaasd/x.sock", "/var/lib/docker/volumes/st/_data/x.sock", true},
		{"/var/lib/dockerfaasd/handoff/a.sock", "/srv/handoff/a.sock", true}, // the deepest mount wins
		{"/var/lib/dockerfaasd", "/var/lib/docker/volumes/st/_data", true},
		{"/var/lib/dockerfaasd-other/a", "", false},
		{"/tmp/a.sock", "", false},
	} {
		got, ok := HostPath(mounts, tc.path)
		if got != tc.want || ok != tc.ok {
			t.Errorf("HostPath(%s) = %q, %v; want %q, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}
