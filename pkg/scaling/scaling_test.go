package scaling

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	d := Defaults{Max: 20, Limit: 100, ZeroDuration: 15 * time.Minute, DownWindow: 30 * time.Second}
	base := Policy{Min: 1, Max: 20, Factor: 10, ZeroDuration: 15 * time.Minute, Type: Legacy, Target: 50, TargetProportion: 0.90, DownWindow: 30 * time.Second}
	with := func(f func(*Policy)) Policy { p := base; f(&p); return p }
	tests := []struct {
		name      string
		labels    map[string]string
		want      Policy
		wantLabel string // the label a failure must name
	}{
		{name: "no labels: OpenFaaS defaults, legacy mode", want: base},
		{name: "min and max", labels: map[string]string{LabelMin: "2", LabelMax: "5"}, want: with(func(p *Policy) { p.Min, p.Max, p.Asked = 2, 5, true })},
		{name: "min above the default max raises max", labels: map[string]string{LabelMin: "30"}, want: with(func(p *Policy) { p.Min, p.Max = 30, 30 })},
		{name: "a target alone means rps", labels: map[string]string{LabelTarget: "10"}, want: with(func(p *Policy) { p.Type, p.Target, p.Asked = RPS, 10, true })},
		{name: "pro labels", labels: map[string]string{LabelType: "capacity", LabelTarget: "5", LabelTargetProportion: "0.5", LabelDownWindow: "10s"},
			want: with(func(p *Policy) {
				p.Type, p.Target, p.TargetProportion, p.DownWindow, p.Asked = Capacity, 5, 0.5, 10*time.Second, true
			})},
		{name: "scale to zero", labels: map[string]string{LabelZero: "true", LabelZeroDuration: "2m"}, want: with(func(p *Policy) { p.Zero, p.ZeroDuration = true, 2*time.Minute })},
		{name: "factor 0 is accepted: autoscaling off", labels: map[string]string{LabelFactor: "0"}, want: with(func(p *Policy) { p.Factor = 0 })},
		{name: "cpu", labels: map[string]string{LabelType: "cpu", LabelTarget: "500"}, want: with(func(p *Policy) { p.Type, p.Target, p.Asked = CPU, 500, true })},

		{name: "min not a number", labels: map[string]string{LabelMin: "two"}, wantLabel: LabelMin},
		{name: "negative max", labels: map[string]string{LabelMax: "-1"}, wantLabel: LabelMax},
		{name: "max above the limit", labels: map[string]string{LabelMax: "101"}, wantLabel: LabelMax},
		{name: "min above an explicit max", labels: map[string]string{LabelMin: "3", LabelMax: "2"}, wantLabel: LabelMin},
		{name: "min above the limit", labels: map[string]string{LabelMin: "101"}, wantLabel: LabelMin},
		{name: "factor above 100", labels: map[string]string{LabelFactor: "101"}, wantLabel: LabelFactor},
		{name: "zero not a bool", labels: map[string]string{LabelZero: "maybe"}, wantLabel: LabelZero},
		{name: "zero-duration not a duration", labels: map[string]string{LabelZeroDuration: "soon"}, wantLabel: LabelZeroDuration},
		{name: "zero-duration negative", labels: map[string]string{LabelZeroDuration: "-1s"}, wantLabel: LabelZeroDuration},
		{name: "unknown type", labels: map[string]string{LabelType: "memory"}, wantLabel: LabelType},
		{name: "target 0", labels: map[string]string{LabelTarget: "0"}, wantLabel: LabelTarget},
		{name: "target NaN", labels: map[string]string{LabelTarget: "NaN"}, wantLabel: LabelTarget},
		{name: "proportion above 1", labels: map[string]string{LabelTargetProportion: "1.5"}, wantLabel: LabelTargetProportion},
		{name: "down window above 5m", labels: map[string]string{LabelDownWindow: "10m"}, wantLabel: LabelDownWindow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.labels, d)
			if tt.wantLabel != "" {
				if err == nil || !errors.Is(err, ErrLabel) || !strings.Contains(err.Error(), tt.wantLabel) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantLabel)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestPolicyHelpers(t *testing.T) {
	p := Policy{Min: 2, Max: 5, Factor: 10}
	for _, c := range []struct{ in, want uint64 }{{0, 0}, {1, 2}, {3, 3}, {9, 5}} {
		if got := p.Clamp(c.in); got != c.want {
			t.Errorf("Clamp(%d) = %d, want %d", c.in, got, c.want)
		}
	}
	if p.WakeTo() != 2 || (Policy{}).WakeTo() != 1 {
		t.Error("WakeTo is not max(min, 1)")
	}
	for _, c := range []struct {
		p             Policy
		static, idles bool
	}{
		{Policy{Min: 2, Max: 2, Factor: 10, Asked: true, Zero: true}, true, false},
		{Policy{Min: 1, Max: 5, Factor: 0, Asked: true, Zero: true}, true, false},
		{Policy{Min: 1, Max: 5, Factor: 10, Asked: true}, false, false},
		{Policy{Min: 1, Max: 20, Factor: 10}, true, false},            // no label asked: the API's replicas stay
		{Policy{Min: 1, Max: 20, Factor: 10, Zero: true}, true, true}, // zero alone: idles, no load scaling
		{Policy{Min: 1, Max: 5, Factor: 10, Asked: true, Zero: true}, false, true},
	} {
		if c.p.Static() != c.static || c.p.Idles() != c.idles {
			t.Errorf("%+v: Static %v Idles %v, want %v %v", c.p, c.p.Static(), c.p.Idles(), c.static, c.idles)
		}
	}
}
