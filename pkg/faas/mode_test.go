package faas

import "testing"

func TestModeOf(t *testing.T) {
	tests := []struct {
		ann  map[string]string
		want string
		bad  bool
	}{
		{nil, ModeReplicas, false},
		{map[string]string{AnnotationMode: ""}, ModeReplicas, false},
		{map[string]string{AnnotationMode: "replicas"}, ModeReplicas, false},
		{map[string]string{AnnotationMode: "job"}, ModeJob, false},
		{map[string]string{AnnotationMode: "Job"}, "", true},
		{map[string]string{AnnotationMode: "per-request"}, "", true},
	}
	for _, tt := range tests {
		got, err := ModeOf(tt.ann)
		if got != tt.want || (err != nil) != tt.bad {
			t.Errorf("ModeOf(%v) = %q, %v; want %q, error %v", tt.ann, got, err, tt.want, tt.bad)
		}
		if IsJob(tt.ann) != (tt.want == ModeJob) {
			t.Errorf("IsJob(%v) = %v", tt.ann, IsJob(tt.ann))
		}
	}
}

func TestJobConcurrencyOf(t *testing.T) {
	tests := []struct {
		v    string
		set  bool
		want int
		bad  bool
	}{
		{set: false, want: 0},
		{v: "1", set: true, want: 1},
		{v: "10000", set: true, want: 10000},
		{v: "0", set: true, bad: true},
		{v: "-2", set: true, bad: true},
		{v: "10001", set: true, bad: true},
		{v: "2.5", set: true, bad: true},
		{v: "", set: true, bad: true},
	}
	for _, tt := range tests {
		ann := map[string]string{}
		if tt.set {
			ann[AnnotationJobConcurrency] = tt.v
		}
		got, err := JobConcurrencyOf(ann)
		if got != tt.want || (err != nil) != tt.bad {
			t.Errorf("JobConcurrencyOf(%q) = %d, %v; want %d, error %v", tt.v, got, err, tt.want, tt.bad)
		}
	}
}

func TestJobWarmOf(t *testing.T) {
	tests := []struct {
		v      string
		set    bool
		want   int
		wantOK bool
		bad    bool
	}{
		{set: false},
		{v: "0", set: true, want: 0, wantOK: true},
		{v: "3", set: true, want: 3, wantOK: true},
		{v: "64", set: true, want: 64, wantOK: true},
		{v: "65", set: true, bad: true},
		{v: "-1", set: true, bad: true},
		{v: "one", set: true, bad: true},
		{v: "", set: true, bad: true},
	}
	for _, tt := range tests {
		ann := map[string]string{}
		if tt.set {
			ann[AnnotationJobWarm] = tt.v
		}
		got, ok, err := JobWarmOf(ann)
		if got != tt.want || ok != tt.wantOK || (err != nil) != tt.bad {
			t.Errorf("JobWarmOf(%q) = %d, %v, %v; want %d, %v, error %v", tt.v, got, ok, err, tt.want, tt.wantOK, tt.bad)
		}
	}
}

func TestJobStreamOf(t *testing.T) {
	tests := []struct {
		v    string
		set  bool
		want bool
		bad  bool
	}{
		{set: false},
		{v: "false", set: true},
		{v: "true", set: true, want: true},
		{v: "yes", set: true, bad: true},
		{v: "", set: true, bad: true},
	}
	for _, tt := range tests {
		ann := map[string]string{}
		if tt.set {
			ann[AnnotationJobStream] = tt.v
		}
		got, err := JobStreamOf(ann)
		if got != tt.want || (err != nil) != tt.bad {
			t.Errorf("JobStreamOf(%q) = %v, %v; want %v, error %v", tt.v, got, err, tt.want, tt.bad)
		}
	}
}
