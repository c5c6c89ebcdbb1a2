package docker

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The streams are what Docker Engine 20.10 answered to POST /images/load
// (quiet=1) for the archives named.
func TestParseLoadStream(t *testing.T) {
	tests := []struct {
		name       string
		stream     string
		want       LoadResult
		wantLoad   string // the *LoadError's message
		wantBroken bool   // an error that is not a *LoadError
	}{
		{
			name:   "two images",
			stream: `{"stream":"Loaded image: a/x:1\n"}` + "\n" + `{"stream":"Loaded image: a/y:1\n"}` + "\n",
			want:   LoadResult{Loaded: []LoadedRef{{Ref: "a/x:1"}, {Ref: "a/y:1"}}, Moved: map[string]string{}},
		},
		{
			name: "a tag moved from another image",
			stream: `{"stream":"The image a/x:1 already exists, renaming the old one with ID sha256:03cd to empty string\n"}` +
				`{"stream":"Loaded image: a/x:1\n"}`,
			want: LoadResult{Loaded: []LoadedRef{{Ref: "a/x:1"}}, Moved: map[string]string{"a/x:1": "sha256:03cd"}},
		},
		{
			name:   "an image saved by ID",
			stream: `{"stream":"Loaded image ID: sha256:60156e\n"}`,
			want:   LoadResult{Loaded: []LoadedRef{{ID: "sha256:60156e"}}, Moved: map[string]string{}},
		},
		{
			name: "second image broken: the first stays reported",
			stream: `{"stream":"Loaded image: a/x:1\n"}` +
				`{"errorDetail":{"message":"open /var/lib/docker/tmp/docker-import-1/0e3f/layer.tar: no such file or directory"},"error":"open …"}`,
			want:     LoadResult{Loaded: []LoadedRef{{Ref: "a/x:1"}}, Moved: map[string]string{}},
			wantLoad: "open /var/lib/docker/tmp/docker-import-1/0e3f/layer.tar: no such file or directory",
		},
		{
			name:     "truncated archive",
			stream:   `{"errorDetail":{"message":"Error processing tar file(exit status 1): unexpected EOF"},"error":"Error processing tar file(exit status 1): unexpected EOF"}`,
			want:     LoadResult{Moved: map[string]string{}},
			wantLoad: "Error processing tar file(exit status 1): unexpected EOF",
		},
		{
			name:     "error without detail",
			stream:   `{"error":"no space left"}`,
			want:     LoadResult{Moved: map[string]string{}},
			wantLoad: "no space left",
		},
		{
			name:   "progress lines are ignored",
			stream: `{"status":"Loading layer","progressDetail":{"current":2048,"total":2048},"id":"989cf33445ee"}{"stream":"Loaded image: a/x:1\n"}`,
			want:   LoadResult{Loaded: []LoadedRef{{Ref: "a/x:1"}}, Moved: map[string]string{}},
		},
		{
			name:       "stream cut off",
			stream:     `{"stream":"Loaded image: a/x:1\n"}{"stream":"Loa`,
			want:       LoadResult{Loaded: []LoadedRef{{Ref: "a/x:1"}}, Moved: map[string]string{}},
			wantBroken: true,
		},
		{
			name:   "empty answer",
			stream: ``,
			want:   LoadResult{Moved: map[string]string{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLoadStream(strings.NewReader(tt.stream))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("result %+v, want %+v", got, tt.want)
			}
			var le *LoadError
			switch {
			case tt.wantLoad != "":
				if !errors.As(err, &le) || le.Message != tt.wantLoad {
					t.Errorf("error %v, want the load error %q", err, tt.wantLoad)
				}
			case tt.wantBroken:
				if err == nil || errors.As(err, &le) {
					t.Errorf("error %v, want a broken stream", err)
				}
			case err != nil:
				t.Errorf("error %v", err)
			}
		})
	}
}
