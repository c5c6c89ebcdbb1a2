package ui_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dockerfaasd/dockerfaasd/pkg/api"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
	"github.com/dockerfaasd/dockerfaasd/pkg/ui"
)

// replicaRowRE reads one row of the function page's replica table: the
// container and the text of its Node cell.
var replicaRowRE = regexp.MustCompile(`<tr data-container="([^"]+)">.*?<td class="node">(.*?)</td>`)

// boardSource is the controller's view for /debug/reconcile: the board.
type boardSource struct{ *status.Board }

func (b boardSource) Functions() []status.Function { return b.List() }
func (b boardSource) Global() status.Global        { return status.Global{} }

// TestFunctionPageShowsWhereReplicasRun: the replica table has a Node
// column with the host each replica runs on, as the controller reported it
// (through /debug/reconcile's JSON, as the page reads it).
func TestFunctionPageShowsWhereReplicasRun(t *testing.T) {
	tests := []struct {
		name     string
		replicas []status.Replica
		// want is the Node cell by container ID.
		want map[string]string
	}{
		{
			name: "swarm: tasks on two nodes",
			replicas: []status.Replica{
				{Name: "dfd-echo_openfaas-fn.1@node-a", ID: "aaaaaaaaaaaa", Slot: 1, State: status.ReplicaReady, CurrentSpec: true, Node: "node-a"},
				{Name: "dfd-echo_openfaas-fn.2@node-b", ID: "bbbbbbbbbbbb", Slot: 2, State: status.ReplicaReady, CurrentSpec: true, Node: "node-b"},
			},
			want: map[string]string{"aaaaaaaaaaaa": "node-a", "bbbbbbbbbbbb": "node-b"},
		},
		{
			name: "one Docker host",
			replicas: []status.Replica{
				{Name: "t-echo-0", ID: "cccccccccccc", State: status.ReplicaStarting, CurrentSpec: true, Node: "docker-host-1"},
			},
			want: map[string]string{"cccccccccccc": "docker-host-1"},
		},
		{
			name: "not placed yet, and a name that needs escaping",
			replicas: []status.Replica{
				{Name: "dfd-echo_openfaas-fn.1@unassigned", ID: "dddddddddddd", State: status.ReplicaStarting, CurrentSpec: true},
				{Name: "x", ID: "eeeeeeeeeeee", State: status.ReplicaReady, Node: "<b>host</b>"},
			},
			want: map[string]string{"dddddddddddd": `<span class="muted">not known yet</span>`, "eeeeeeeeeeee": "&lt;b&gt;host&lt;/b&gt;"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, _ := logtest.NewNullLogger()
			log.SetLevel(logrus.DebugLevel)
			c, err := ui.New(ui.Config{Log: log})
			if err != nil {
				t.Fatal(err)
			}
			st, board := store.NewMemory(), status.NewBoard()
			router := api.NewRouter(api.Config{
				Store: st, Status: board, Invocations: counter(0),
				Auth: api.Auth{User: user, Password: pass}, Log: log, UI: c,
				Debug: api.DebugHandler(boardSource{board}),
			})
			c.Bind(router)
			if _, err := st.Create(context.Background(), types.FunctionDeployment{Service: "echo", Image: "example/echo:1", Namespace: "openfaas-fn"}, uint64(len(tt.replicas))); err != nil {
				t.Fatal(err)
			}
			board.Set(status.Function{Key: "openfaas-fn/echo", Replicas: tt.replicas})

			r := httptest.NewRequest(http.MethodGet, "/ui/function?name=echo&namespace=openfaas-fn", nil)
			r.SetBasicAuth(user, pass)
			w := httptest.NewRecorder()
			router.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("function page: %d\n%s", w.Code, w.Body)
			}
			body := w.Body.String()
			if !regexp.MustCompile(`<table id="replicas"><tr><th>Container</th><th>State</th><th[^>]*>Node</th>`).MatchString(body) {
				t.Errorf("replica table has no Node column:\n%s", body)
			}
			got := map[string]string{}
			for _, m := range replicaRowRE.FindAllStringSubmatch(body, -1) {
				got[m[1]] = m[2]
			}
			if len(got) != len(tt.want) {
				t.Errorf("replica rows %v, want %v", got, tt.want)
			}
			for id, want := range tt.want {
				if got[id] != want {
					t.Errorf("replica %s: Node cell %q, want %q", id, got[id], want)
				}
			}
		})
	}
}
