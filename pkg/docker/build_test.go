package docker

import (
	"errors"
	"strings"
	"testing"
)

func TestParseBuildStream(t *testing.T) {
	tests := []struct {
		name    string
		stream  string
		lines   []string
		wantErr string
	}{
		{"success", `{"stream":"Step 1/2 : FROM scratch\n"}
{"stream":" ---\u003e \n"}
{"stream":"Step 2/2 : COPY fn /fn\n"}
{"aux":{"ID":"sha256:abc"}}
{"stream":"Successfully built abc\n"}
{"stream":"Successfully tagged fn:1\n"}
`, []string{"Step 1/2 : FROM scratch", " --->", "Step 2/2 : COPY fn /fn", "built sha256:abc", "Successfully built abc", "Successfully tagged fn:1"}, ""},
		{"engine error", `{"stream":"Step 1/1 : FROM nope\n"}
{"errorDetail":{"message":"pull access denied for nope"},"error":"pull access denied for nope"}
`, []string{"Step 1/1 : FROM nope"}, "pull access denied for nope"},
		{"status", `{"status":"Downloading","id":"abc"}`, []string{"abc: Downloading"}, ""},
		{"cut off", `{"stream":"Step`, nil, "reading the build's answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var lines []string
			err := ParseBuildStream(strings.NewReader(tc.stream), func(l string) { lines = append(lines, l) })
			if strings.Join(lines, "|") != strings.Join(tc.lines, "|") {
				t.Errorf("lines = %q, want %q", lines, tc.lines)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("err = %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			var be *BuildError
			if tc.name == "engine error" && !errors.As(err, &be) {
				t.Errorf("err = %T, want *BuildError", err)
			}
		})
	}
}
