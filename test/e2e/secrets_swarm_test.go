package e2e

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// The swarm half of the secrets tests. On a swarm a function secret is a
// swarm secret per version (INSTANCE.NAMESPACE.SECRET.REVISION), shared by
// the functions of a namespace and mounted by swarm itself, so what the
// Docker runtime's tests read from containers is read here from swarm's
// objects: the secret references of services and tasks, and the swarm
// secrets' names and labels.

const (
	// labelSecret names the function secret a swarm secret holds a
	// version of (pkg/docker LabelSecret).
	labelSecret = "io.dockerfaas.secret"
	// swarmStateDir is the daemon image's STATE_DIR (see Dockerfile): the
	// swarm harness does not set one, so the state lives in the volume
	// the image declares there.
	swarmStateDir = "/var/lib/dockerfaasd"
)

// swarmSecrets lists the swarm secrets labelled with the daemon's instance,
// by ID. The label is checked again, because a filter that matched too much
// would make every "not there any more" check pass for the wrong reason.
func (d *daemon) swarmSecrets() (map[string]swarm.Secret, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := d.docker.SecretList(ctx, swarm.SecretListOptions{Filters: filters.NewArgs(
		filters.Arg("label", labelInstance+"="+d.instance))})
	if err != nil {
		return nil, fmt.Errorf("list swarm secrets: %w", err)
	}
	out := make(map[string]swarm.Secret, len(list))
	for _, s := range list {
		if s.Spec.Labels[labelInstance] == d.instance {
			out[s.ID] = s
		}
	}
	return out, nil
}

// secretVersions lists the swarm secrets holding versions of the function
// secret name (namespace openfaas-fn), by swarm secret name.
func (d *daemon) secretVersions(name string) ([]string, error) {
	all, err := d.swarmSecrets()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range all {
		if s.Spec.Labels[labelSecret] == name && s.Spec.Labels[labelNamespace] == defaultNamespace {
			out = append(out, s.Spec.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// swarmSecretMounts checks what swarm mounts for a function and returns it
// as function secret name → swarm secret name (the version mounted). The
// service must reference exactly the secrets listed, each once, as
// /var/openfaas/secrets/NAME owned by root with mode 0444 (swarm creates
// the file from the reference: Docker's archive API does not see secret
// mounts, so this is the swarm equivalent of reading modes from a
// container); each reference must name a swarm secret of this instance,
// labelled with its namespace and function secret; and every running task
// must carry the same references (what its node mounted).
func (d *daemon) swarmSecretMounts(name string, secrets []string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := d.swarmService(ctx, name, defaultNamespace)
	if err != nil {
		return nil, err
	}
	cs := svc.Spec.TaskTemplate.ContainerSpec
	if cs == nil {
		return nil, fmt.Errorf("service %s has no container spec", svc.Spec.Name)
	}
	versions, err := d.swarmSecrets()
	if err != nil {
		return nil, err
	}
	mounted := map[string]string{}
	ids := map[string]string{} // file → swarm secret ID
	for _, ref := range cs.Secrets {
		if ref.File == nil {
			return nil, fmt.Errorf("%s: secret %s is not mounted as a file", name, ref.SecretName)
		}
		file := path.Base(ref.File.Name)
		if got, want := ref.File.Name, secretsDir+"/"+file; got != want {
			return nil, fmt.Errorf("%s: secret %s mounted at %s, want %s", name, ref.SecretName, got, want)
		}
		if ref.File.UID != "0" || ref.File.GID != "0" || ref.File.Mode != 0o444 {
			return nil, fmt.Errorf("%s: %s owned %s:%s mode %v, want root:root 0444",
				name, ref.File.Name, ref.File.UID, ref.File.GID, ref.File.Mode)
		}
		if _, dup := mounted[file]; dup {
			return nil, fmt.Errorf("%s: %s mounted twice", name, ref.File.Name)
		}
		s, ok := versions[ref.SecretID]
		if !ok {
			return nil, fmt.Errorf("%s: references swarm secret %s (%s), which is not one of instance %s",
				name, ref.SecretName, short(ref.SecretID), d.instance)
		}
		wantLabels := map[string]string{
			labelManaged: "true", labelInstance: d.instance, labelNamespace: defaultNamespace, labelSecret: file,
		}
		if s.Spec.Name != ref.SecretName || !maps.Equal(s.Spec.Labels, wantLabels) {
			return nil, fmt.Errorf("%s: swarm secret %s is named %s with labels %v, want %s with %v",
				name, short(s.ID), s.Spec.Name, s.Spec.Labels, ref.SecretName, wantLabels)
		}
		if prefix := d.instance + "." + defaultNamespace + "." + file + "."; !strings.HasPrefix(s.Spec.Name, prefix) {
			return nil, fmt.Errorf("%s: swarm secret %s, want a version named %sREVISION", name, s.Spec.Name, prefix)
		}
		mounted[file] = s.Spec.Name
		ids[file] = s.ID
	}
	if got, want := slices.Sorted(maps.Keys(mounted)), slices.Sorted(slices.Values(secrets)); !slices.Equal(got, want) {
		return nil, fmt.Errorf("%s mounts secrets %v, want %v", name, got, want)
	}
	tasks, err := d.swarmTasks(name, defaultNamespace)
	if err != nil {
		return nil, err
	}
	for _, tk := range tasks {
		var refs []*swarm.SecretReference
		if tk.Spec.ContainerSpec != nil {
			refs = tk.Spec.ContainerSpec.Secrets
		}
		got := map[string]string{}
		for _, ref := range refs {
			if ref.File != nil {
				got[path.Base(ref.File.Name)] = ref.SecretID
			}
		}
		if !maps.Equal(got, ids) {
			return nil, fmt.Errorf("%s: running task %s mounts %v, the service %v", name, short(tk.ID), got, ids)
		}
	}
	return mounted, nil
}

// swarmSecretsHoldNo fails t when a value shows in the name or labels of a
// swarm secret of the instance: anyone who may list secrets reads those
// (the value itself is never readable back from swarm).
func (d *daemon) swarmSecretsHoldNo(t *testing.T, values ...[]byte) {
	t.Helper()
	all, err := d.swarmSecrets()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if len(s.Spec.Data) != 0 {
			t.Errorf("swarm secret %s: the list returned its data", s.Spec.Name)
		}
		text := s.Spec.Name
		for k, v := range s.Spec.Labels {
			text += "\n" + k + "=" + v
		}
		for _, v := range values {
			if strings.Contains(text, string(v)) {
				t.Errorf("swarm secret %s shows the value %q in its name or labels %v", s.Spec.Name, v, s.Spec.Labels)
			}
		}
	}
}

// swarmStateFile reads a file of the state dir of the daemon's container
// through Docker's archive API (the state is on a volume, which the archive
// API sees, unlike swarm's secret mounts).
func (d *daemon) swarmStateFile(name string) ([]byte, fs.FileMode, error) {
	d.mu.Lock()
	id := d.ctr
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, _, err := d.docker.CopyFromContainer(ctx, id, swarmStateDir+"/"+name)
	if err != nil {
		return nil, 0, fmt.Errorf("copy %s/%s from the daemon container: %w", swarmStateDir, name, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("%s/%s: empty archive", swarmStateDir, name)
	}
	if err != nil {
		return nil, 0, err
	}
	data, err := io.ReadAll(tr)
	return data, h.FileInfo().Mode(), err
}

// swarmServices names the services labelled with the daemon's instance.
func (d *daemon) swarmServices() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svcs, err := d.docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(
		filters.Arg("label", labelInstance+"="+d.instance))})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range svcs {
		if s.Spec.Labels[labelInstance] == d.instance {
			out = append(out, s.Spec.Name)
		}
	}
	return out, nil
}

// onNodes loads an image built on this machine into every node of the
// swarm (no-op on the docker runtime), as fnImage does for test functions.
func (d *daemon) onNodes(img string) string {
	d.t.Helper()
	if d.runtime != runtimeSwarm {
		return img
	}
	return d.swarm.load(d.t, img)
}
