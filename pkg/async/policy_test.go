package async

import (
	"math"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	def := DefaultPolicy // MinWait 1s, MaxWait 2m
	custom := Policy{MaxInflight: 2, Attempts: 3, Codes: []int{503}, MinWait: 2 * time.Second, MaxWait: 10 * time.Second}
	with := func(base Policy, edit func(p *Policy)) Policy {
		base.Codes = slices.Clone(base.Codes)
		edit(&base)
		return base
	}
	cases := []struct {
		name string
		ann  map[string]string
		def  *Policy // nil: DefaultPolicy
		want Policy
		// wantErr lists what the error must name; nil means no error.
		wantErr []string
	}{
		{name: "no annotations", ann: nil, want: def},
		{name: "unrelated annotations", ann: map[string]string{"topic": "x", "com.openfaas.scale.min": "2"}, want: def},

		{name: "max-inflight", ann: map[string]string{AnnotationMaxInflight: "3"}, want: with(def, func(p *Policy) { p.MaxInflight = 3 })},
		{name: "max-inflight spaces trimmed", ann: map[string]string{AnnotationMaxInflight: " 4 "}, want: with(def, func(p *Policy) { p.MaxInflight = 4 })},
		{name: "max-inflight zero", ann: map[string]string{AnnotationMaxInflight: "0"}, wantErr: []string{AnnotationMaxInflight}},
		{name: "max-inflight negative", ann: map[string]string{AnnotationMaxInflight: "-1"}, wantErr: []string{AnnotationMaxInflight}},
		{name: "max-inflight not a number", ann: map[string]string{AnnotationMaxInflight: "many"}, wantErr: []string{AnnotationMaxInflight}},
		{name: "max-inflight fraction", ann: map[string]string{AnnotationMaxInflight: "1.5"}, wantErr: []string{AnnotationMaxInflight}},
		{name: "max-inflight empty", ann: map[string]string{AnnotationMaxInflight: ""}, wantErr: []string{AnnotationMaxInflight}},

		{name: "attempts one", ann: map[string]string{AnnotationRetryAttempts: "1"}, want: with(def, func(p *Policy) { p.Attempts = 1 })},
		{name: "attempts many", ann: map[string]string{AnnotationRetryAttempts: "25"}, want: with(def, func(p *Policy) { p.Attempts = 25 })},
		{name: "attempts zero", ann: map[string]string{AnnotationRetryAttempts: "0"}, wantErr: []string{AnnotationRetryAttempts}},
		{name: "attempts garbage", ann: map[string]string{AnnotationRetryAttempts: "ten"}, wantErr: []string{AnnotationRetryAttempts}},

		{name: "codes", ann: map[string]string{AnnotationRetryCodes: "503,429"}, want: with(def, func(p *Policy) { p.Codes = []int{429, 503} })},
		{name: "codes deduped", ann: map[string]string{AnnotationRetryCodes: " 503, 429 ,503"}, want: with(def, func(p *Policy) { p.Codes = []int{429, 503} })},
		{name: "codes empty retries nothing", ann: map[string]string{AnnotationRetryCodes: ""}, want: with(def, func(p *Policy) { p.Codes = []int{} })},
		{name: "codes out of range", ann: map[string]string{AnnotationRetryCodes: "429,42"}, wantErr: []string{AnnotationRetryCodes, `"42"`}},
		{name: "codes garbage", ann: map[string]string{AnnotationRetryCodes: "5xx"}, wantErr: []string{AnnotationRetryCodes}},

		{name: "min_wait below default max", ann: map[string]string{AnnotationRetryMinWait: "500ms"}, want: with(def, func(p *Policy) { p.MinWait = 500 * time.Millisecond })},
		{name: "min_wait zero", ann: map[string]string{AnnotationRetryMinWait: "0s"}, wantErr: []string{AnnotationRetryMinWait}},
		{name: "min_wait negative", ann: map[string]string{AnnotationRetryMinWait: "-1s"}, wantErr: []string{AnnotationRetryMinWait}},
		{name: "min_wait without unit", ann: map[string]string{AnnotationRetryMinWait: "5"}, wantErr: []string{AnnotationRetryMinWait}},
		{name: "min_wait garbage", ann: map[string]string{AnnotationRetryMinWait: "soon"}, wantErr: []string{AnnotationRetryMinWait}},
		{name: "max_wait above default min", ann: map[string]string{AnnotationRetryMaxWait: "30s"}, want: with(def, func(p *Policy) { p.MaxWait = 30 * time.Second })},
		{name: "max_wait zero", ann: map[string]string{AnnotationRetryMaxWait: "0"}, wantErr: []string{AnnotationRetryMaxWait}},
		{name: "max_wait garbage", ann: map[string]string{AnnotationRetryMaxWait: "2 minutes"}, wantErr: []string{AnnotationRetryMaxWait}},

		{name: "min_wait alone above default max raises max", ann: map[string]string{AnnotationRetryMinWait: "5m"},
			want: with(def, func(p *Policy) { p.MinWait, p.MaxWait = 5*time.Minute, 5*time.Minute })},
		{name: "min_wait alone above custom max raises max", def: &custom, ann: map[string]string{AnnotationRetryMinWait: "20s"},
			want: with(custom, func(p *Policy) { p.MinWait, p.MaxWait = 20*time.Second, 20*time.Second })},
		{name: "max_wait alone below default min lowers min", ann: map[string]string{AnnotationRetryMaxWait: "500ms"},
			want: with(def, func(p *Policy) { p.MinWait, p.MaxWait = 500*time.Millisecond, 500*time.Millisecond })},
		{name: "max_wait alone below custom min lowers min", def: &custom, ann: map[string]string{AnnotationRetryMaxWait: "1s"},
			want: with(custom, func(p *Policy) { p.MinWait, p.MaxWait = time.Second, time.Second })},
		{name: "both in order", ann: map[string]string{AnnotationRetryMinWait: "10s", AnnotationRetryMaxWait: "1m"},
			want: with(def, func(p *Policy) { p.MinWait, p.MaxWait = 10*time.Second, time.Minute })},
		{name: "both equal", ann: map[string]string{AnnotationRetryMinWait: "1m", AnnotationRetryMaxWait: "1m"},
			want: with(def, func(p *Policy) { p.MinWait, p.MaxWait = time.Minute, time.Minute })},
		{name: "both contradicting", ann: map[string]string{AnnotationRetryMinWait: "1m", AnnotationRetryMaxWait: "10s"},
			wantErr: []string{AnnotationRetryMinWait, AnnotationRetryMaxWait}},

		{name: "all valid", ann: map[string]string{
			AnnotationMaxInflight: "5", AnnotationRetryAttempts: "4", AnnotationRetryCodes: "502",
			AnnotationRetryMinWait: "250ms", AnnotationRetryMaxWait: "4s",
		}, want: Policy{MaxInflight: 5, Attempts: 4, Codes: []int{502}, MinWait: 250 * time.Millisecond, MaxWait: 4 * time.Second}},
		{name: "every bad annotation is named", ann: map[string]string{
			AnnotationMaxInflight: "x", AnnotationRetryAttempts: "0", AnnotationRetryCodes: "1000",
			AnnotationRetryMinWait: "forever", AnnotationRetryMaxWait: "-5s",
		}, wantErr: []string{AnnotationMaxInflight, AnnotationRetryAttempts, AnnotationRetryCodes, AnnotationRetryMinWait, AnnotationRetryMaxWait}},
		{name: "one bad among good", ann: map[string]string{AnnotationMaxInflight: "5", AnnotationRetryAttempts: "lots"},
			wantErr: []string{AnnotationRetryAttempts}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := def
			if c.def != nil {
				d = *c.def
			}
			d.Codes = slices.Clone(d.Codes)
			before := slices.Clone(d.Codes)
			got, err := ParsePolicy(c.ann, d)
			if !slices.Equal(d.Codes, before) {
				t.Errorf("ParsePolicy changed the defaults' codes: %v, was %v", d.Codes, before)
			}
			if c.wantErr != nil {
				if err == nil {
					t.Fatalf("ParsePolicy(%v) = %+v, nil; want an error", c.ann, got)
				}
				for _, s := range c.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %q", err, s)
					}
				}
				if !reflect.DeepEqual(got, d) {
					t.Errorf("on error ParsePolicy returned %+v, want the defaults %+v", got, d)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicy(%v): %v", c.ann, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("ParsePolicy(%v) =\n  %+v\nwant\n  %+v", c.ann, got, c.want)
			}
			if err := got.Valid(); err != nil {
				t.Errorf("parsed policy %+v is not Valid: %v", got, err)
			}
		})
	}
}

func TestParseCodes(t *testing.T) {
	cases := []struct {
		in      string
		want    []int
		wantErr string // in the error; "" means none
	}{
		{in: "", want: []int{}},
		{in: "  ", want: []int{}},
		{in: " , ,", want: []int{}},
		{in: "503", want: []int{503}},
		{in: "503,429", want: []int{429, 503}},
		{in: " 504 , 502,504,502 ", want: []int{502, 504}},
		{in: "599,100", want: []int{100, 599}},
		{in: "429,,503", want: []int{429, 503}},
		{in: "99", wantErr: `"99"`},
		{in: "600", wantErr: `"600"`},
		{in: "0", wantErr: `"0"`},
		{in: "-500", wantErr: `"-500"`},
		{in: "429,5xx", wantErr: `"5xx"`},
		{in: "429;503", wantErr: `"429;503"`},
		{in: "429 503", wantErr: `"429 503"`},
		{in: "4e2", wantErr: `"4e2"`},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseCodes(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("ParseCodes(%q) = %v, %v; want an error naming %s", c.in, got, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCodes(%q): %v", c.in, err)
			}
			if got == nil {
				t.Fatalf("ParseCodes(%q) = nil, want a non-nil (possibly empty) list", c.in)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("ParseCodes(%q) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}

func TestPolicyValid(t *testing.T) {
	good := Policy{MaxInflight: 1, Attempts: 1, Codes: []int{429}, MinWait: time.Second, MaxWait: time.Second}
	with := func(edit func(p *Policy)) Policy {
		p := good
		p.Codes = slices.Clone(good.Codes)
		edit(&p)
		return p
	}
	cases := []struct {
		name    string
		p       Policy
		wantErr string // in the error; "" means valid
	}{
		{name: "default", p: DefaultPolicy},
		{name: "smallest", p: good},
		{name: "no codes", p: with(func(p *Policy) { p.Codes = nil })},
		{name: "empty codes", p: with(func(p *Policy) { p.Codes = []int{} })},
		{name: "edge codes", p: with(func(p *Policy) { p.Codes = []int{100, 599} })},
		{name: "max-inflight zero", p: with(func(p *Policy) { p.MaxInflight = 0 }), wantErr: "in-flight"},
		{name: "max-inflight negative", p: with(func(p *Policy) { p.MaxInflight = -3 }), wantErr: "in-flight"},
		{name: "attempts zero", p: with(func(p *Policy) { p.Attempts = 0 }), wantErr: "attempts"},
		{name: "min wait zero", p: with(func(p *Policy) { p.MinWait = 0 }), wantErr: "minimum wait"},
		{name: "min wait negative", p: with(func(p *Policy) { p.MinWait, p.MaxWait = -time.Second, time.Second }), wantErr: "minimum wait"},
		{name: "max below min", p: with(func(p *Policy) { p.MinWait, p.MaxWait = 2*time.Second, time.Second }), wantErr: "maximum wait"},
		{name: "code too small", p: with(func(p *Policy) { p.Codes = []int{429, 99} }), wantErr: "99"},
		{name: "code too large", p: with(func(p *Policy) { p.Codes = []int{600} }), wantErr: "600"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.p.Valid()
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("Valid() = %v, want nil", err)
			case c.wantErr != "" && err == nil:
				t.Errorf("Valid() = nil, want an error about %q", c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Errorf("Valid() = %q, want it to mention %q", err, c.wantErr)
			}
		})
	}
}

func TestPolicyRetries(t *testing.T) {
	cases := []struct {
		name  string
		codes []int
		code  int
		want  bool
	}{
		{"default 429", DefaultRetryCodes, 429, true},
		{"default 503", DefaultRetryCodes, 503, true},
		{"default 408", DefaultRetryCodes, 408, true},
		{"default 504", DefaultRetryCodes, 504, true},
		{"default 200", DefaultRetryCodes, 200, false},
		{"default 404", DefaultRetryCodes, 404, false},
		{"default 501", DefaultRetryCodes, 501, false},
		{"custom listed", []int{418}, 418, true},
		{"custom not listed", []int{418}, 500, false},
		{"empty", []int{}, 500, false},
		{"nil", nil, 503, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := DefaultPolicy
			p.Codes = c.codes
			if got := p.Retries(c.code); got != c.want {
				t.Errorf("Retries(%d) with codes %v = %v, want %v", c.code, c.codes, got, c.want)
			}
		})
	}
}

// TestPolicyWaitBounds checks Wait against its definition for many
// attempts: with base = min(MinWait·2^(n-1), MaxWait), the wait is within
// [max(MinWait, base/2), base], is the lower bound for rnd 0, grows with
// rnd and never shrinks from one attempt to the next.
func TestPolicyWaitBounds(t *testing.T) {
	policies := []struct {
		name     string
		min, max time.Duration
	}{
		{"default", time.Second, 2 * time.Minute},
		{"equal", 3 * time.Second, 3 * time.Second},
		{"max not a power of two of min", 300 * time.Millisecond, 1100 * time.Millisecond},
		{"max just above min", time.Second, 1500 * time.Millisecond},
		{"tiny", time.Millisecond, 10 * time.Millisecond},
		{"long", time.Minute, time.Hour},
	}
	for _, pc := range policies {
		t.Run(pc.name, func(t *testing.T) {
			p := DefaultPolicy
			p.MinWait, p.MaxWait = pc.min, pc.max
			prev := map[float64]time.Duration{}
			for n := 1; n <= 70; n++ {
				// In float64, where doubling is exact and cannot overflow.
				base := p.MaxWait
				if b := float64(p.MinWait) * math.Pow(2, float64(n-1)); b < float64(p.MaxWait) {
					base = time.Duration(b)
				}
				lo, hi := max(p.MinWait, base/2), base
				var last time.Duration
				for _, rnd := range []float64{0, 0.25, 0.5, 0.999} {
					got := p.Wait(n, 0, rnd)
					if got < lo || got > hi {
						t.Errorf("Wait(%d, 0, %v) = %v, want within [%v, %v]", n, rnd, got, lo, hi)
					}
					if rnd == 0 && got != lo {
						t.Errorf("Wait(%d, 0, 0) = %v, want the lower bound %v", n, got, lo)
					}
					if got < last {
						t.Errorf("Wait(%d, 0, %v) = %v, shorter than %v for a smaller rnd", n, rnd, got, last)
					}
					last = got
					if got < prev[rnd] {
						t.Errorf("Wait(%d, 0, %v) = %v, shorter than %v for attempt %d", n, rnd, got, prev[rnd], n-1)
					}
					prev[rnd] = got
				}
			}
		})
	}
}

func TestPolicyWait(t *testing.T) {
	def := DefaultPolicy // 1s .. 2m
	long := DefaultPolicy
	long.MinWait, long.MaxWait = 90*time.Minute, 3*time.Hour
	cases := []struct {
		name       string
		p          Policy
		attempt    int
		retryAfter time.Duration
		rnd        float64
		want       time.Duration
	}{
		{"first retry", def, 1, 0, 0, time.Second},
		{"first retry never below min", def, 1, 0, 0.999, time.Second},
		{"second retry rnd 0", def, 2, 0, 0, time.Second},
		{"second retry rnd 0.5", def, 2, 0, 0.5, 1500 * time.Millisecond},
		{"third retry rnd 0", def, 3, 0, 0, 2 * time.Second},
		{"third retry rnd 0.5", def, 3, 0, 0.5, 3 * time.Second},
		{"eighth retry capped rnd 0", def, 8, 0, 0, time.Minute},
		{"eighth retry capped rnd 0.5", def, 8, 0, 0.5, 90 * time.Second},
		{"huge attempt does not overflow", def, 1000, 0, 0, time.Minute},
		{"attempt 0 is like 1", def, 0, 0, 0, time.Second},
		{"retry-after longer wins", def, 1, 5 * time.Second, 0, 5 * time.Second},
		{"retry-after shorter loses", def, 3, 500 * time.Millisecond, 0, 2 * time.Second},
		{"retry-after equal", def, 3, 2 * time.Second, 0, 2 * time.Second},
		{"retry-after negative ignored", def, 1, -time.Minute, 0, time.Second},
		{"retry-after capped at 1h", def, 1, 2 * time.Hour, 0, time.Hour},
		{"retry-after just below cap", def, 1, 59 * time.Minute, 0, 59 * time.Minute},
		{"retry-after beats max wait", def, 10, 30 * time.Minute, 0.999, 30 * time.Minute},
		// A Retry-After wins only when longer: capped at 1h, it must not
		// cut short a backoff that is already longer than 1h.
		{"retry-after over cap does not shorten a longer backoff", long, 1, 2 * time.Hour, 0, 90 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.Wait(c.attempt, c.retryAfter, c.rnd); got != c.want {
				t.Errorf("Wait(%d, %v, %v) with min %v max %v = %v, want %v",
					c.attempt, c.retryAfter, c.rnd, c.p.MinWait, c.p.MaxWait, got, c.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		values []string // Retry-After values; nil: absent
		want   time.Duration
		wantOK bool
	}{
		{name: "absent"},
		{name: "empty", values: []string{""}},
		{name: "blank", values: []string{"   "}},
		{name: "seconds", values: []string{"120"}, want: 2 * time.Minute, wantOK: true},
		{name: "seconds with spaces", values: []string{" 5 "}, want: 5 * time.Second, wantOK: true},
		{name: "zero seconds", values: []string{"0"}, want: 0, wantOK: true},
		{name: "one hour", values: []string{"3600"}, want: time.Hour, wantOK: true},
		{name: "seconds above an hour capped", values: []string{"7200"}, want: time.Hour, wantOK: true},
		{name: "huge seconds do not overflow", values: []string{"9999999999999"}, want: time.Hour, wantOK: true},
		{name: "negative seconds", values: []string{"-1"}},
		{name: "fraction", values: []string{"1.5"}},
		{name: "seconds with unit", values: []string{"5s"}},
		{name: "garbage", values: []string{"soon"}},
		{name: "ISO date", values: []string{"2025-03-01T12:01:00Z"}},
		{name: "HTTP date ahead", values: []string{now.Add(90 * time.Second).Format(http.TimeFormat)}, want: 90 * time.Second, wantOK: true},
		{name: "HTTP date an hour ahead", values: []string{now.Add(time.Hour).Format(http.TimeFormat)}, want: time.Hour, wantOK: true},
		{name: "HTTP date now", values: []string{now.Format(http.TimeFormat)}, want: 0, wantOK: true},
		{name: "HTTP date past", values: []string{now.Add(-time.Hour).Format(http.TimeFormat)}, want: 0, wantOK: true},
		{name: "RFC 850 date ahead", values: []string{now.Add(time.Minute).Format(time.RFC850)}, want: time.Minute, wantOK: true},
		{name: "ANSI C date ahead", values: []string{now.Add(2 * time.Minute).Format(time.ANSIC)}, want: 2 * time.Minute, wantOK: true},
		{name: "first of several values", values: []string{"30", "60"}, want: 30 * time.Second, wantOK: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range c.values {
				h.Add("Retry-After", v)
			}
			got, ok := RetryAfter(h, now)
			if got != c.want || ok != c.wantOK {
				t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", c.values, got, ok, c.want, c.wantOK)
			}
		})
	}
}
