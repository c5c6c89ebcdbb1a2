package faas

import (
	"strings"
	"testing"
)

func TestIsolationOf(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ann     map[string]string
		want    Isolation
		wantErr string
	}{
		{"none", nil, Isolation{Protocol: ProtocolHTTP}, ""},
		{"shared", map[string]string{AnnotationIsolation: "shared"}, Isolation{Protocol: ProtocolHTTP}, ""},
		{"per-request", map[string]string{AnnotationIsolation: "per-request"}, Isolation{PerRequest: true, Protocol: ProtocolHTTP}, ""},
		{"socket and size", map[string]string{AnnotationIsolation: "per-request", AnnotationProtocol: "socket", AnnotationPoolSize: "4"},
			Isolation{PerRequest: true, Protocol: ProtocolSocket, PoolSize: 4}, ""},
		{"http explicit without isolation", map[string]string{AnnotationProtocol: "http"}, Isolation{Protocol: ProtocolHTTP}, ""},
		{"unknown isolation", map[string]string{AnnotationIsolation: "per-call"}, Isolation{}, `io.dockerfaas.isolation "per-call"`},
		{"unknown protocol", map[string]string{AnnotationIsolation: "per-request", AnnotationProtocol: "grpc"}, Isolation{}, `io.dockerfaas.protocol "grpc"`},
		{"size zero", map[string]string{AnnotationIsolation: "per-request", AnnotationPoolSize: "0"}, Isolation{}, "from 1 to 64"},
		{"size too big", map[string]string{AnnotationIsolation: "per-request", AnnotationPoolSize: "65"}, Isolation{}, "from 1 to 64"},
		{"size not a number", map[string]string{AnnotationIsolation: "per-request", AnnotationPoolSize: "two"}, Isolation{}, "from 1 to 64"},
		{"socket without isolation", map[string]string{AnnotationProtocol: "socket"}, Isolation{}, "apply only with"},
		{"size without isolation", map[string]string{AnnotationPoolSize: "2"}, Isolation{}, "apply only with"},
		{"with job mode", map[string]string{AnnotationIsolation: "per-request", AnnotationMode: ModeJob}, Isolation{}, "does not combine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := IsolationOf(tc.ann)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
			if IsPerRequest(tc.ann) != tc.want.PerRequest {
				t.Errorf("IsPerRequest = %v", !tc.want.PerRequest)
			}
		})
	}
}
