package faas

import (
	"strings"
	"testing"
)

func TestRouteOf(t *testing.T) {
	long := "/" + strings.Repeat("a", MaxRouteLen-1)
	for _, tc := range []struct {
		name    string
		ann     map[string]string
		want    string
		wantErr string
	}{
		{"absent", nil, "", ""},
		{"other annotations", map[string]string{AnnotationMode: ModeJob}, "", ""},
		{"simple", map[string]string{AnnotationRoute: "/sum"}, "/sum", ""},
		{"nested", map[string]string{AnnotationRoute: "/api/v1/sum"}, "/api/v1/sum", ""},
		{"unreserved characters", map[string]string{AnnotationRoute: "/a-b.c_d~e/F9"}, "/a-b.c_d~e/F9", ""},
		{"like a reserved prefix but not under it", map[string]string{AnnotationRoute: "/systems"}, "/systems", ""},
		{"builder-like but not under it", map[string]string{AnnotationRoute: "/builder"}, "/builder", ""},
		{"at the length limit", map[string]string{AnnotationRoute: long}, long, ""},
		{"too long", map[string]string{AnnotationRoute: long + "a"}, "", "longer than 128 bytes"},
		{"empty", map[string]string{AnnotationRoute: ""}, "", "must not be empty"},
		{"relative", map[string]string{AnnotationRoute: "sum"}, "", "must start with /"},
		{"root", map[string]string{AnnotationRoute: "/"}, "", "every path"},
		{"trailing slash", map[string]string{AnnotationRoute: "/sum/"}, "", "must not end with / (the route serves its subpaths anyway: use /sum)"},
		{"double slash", map[string]string{AnnotationRoute: "/a//b"}, "", "clean path"},
		{"dot segment", map[string]string{AnnotationRoute: "/a/./b"}, "", "clean path"},
		{"dot-dot segment", map[string]string{AnnotationRoute: "/a/../system"}, "", "clean path"},
		{"space", map[string]string{AnnotationRoute: "/a b"}, "", "only letters"},
		{"percent", map[string]string{AnnotationRoute: "/a%2Fb"}, "", "only letters"},
		{"query", map[string]string{AnnotationRoute: "/a?b"}, "", "only letters"},
		{"non-ASCII", map[string]string{AnnotationRoute: "/sümme"}, "", "only letters"},
		{"system", map[string]string{AnnotationRoute: "/system"}, "", "/system is the gateway's own"},
		{"under system", map[string]string{AnnotationRoute: "/system/x"}, "", "/system is the gateway's own"},
		{"function", map[string]string{AnnotationRoute: "/function/sum"}, "", "/function is"},
		{"async-function", map[string]string{AnnotationRoute: "/async-function"}, "", "/async-function is"},
		{"healthz", map[string]string{AnnotationRoute: "/healthz"}, "", "/healthz is"},
		{"metrics", map[string]string{AnnotationRoute: "/metrics/x"}, "", "/metrics is"},
		{"debug", map[string]string{AnnotationRoute: "/debug"}, "", "/debug is"},
		{"ui", map[string]string{AnnotationRoute: "/ui"}, "", "/ui is"},
		{"build", map[string]string{AnnotationRoute: "/build"}, "", "/build is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RouteOf(tc.ann)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), AnnotationRoute) {
					t.Fatalf("got %q, %v; want an error naming %s and containing %q", got, err, AnnotationRoute, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestUnderRoute(t *testing.T) {
	for _, tc := range []struct {
		path, route string
		want        bool
	}{
		{"/sum", "/sum", true},
		{"/sum/", "/sum", true},
		{"/sum/x/y", "/sum", true},
		{"/summary", "/sum", false},
		{"/su", "/sum", false},
		{"/other/sum", "/sum", false},
	} {
		if got := UnderRoute(tc.path, tc.route); got != tc.want {
			t.Errorf("UnderRoute(%q, %q) = %v, want %v", tc.path, tc.route, got, tc.want)
		}
	}
}
