package h1

import "testing"

func TestCutLine(t *testing.T) {
	tests := []struct {
		in         string
		line, rest string
		ok         bool
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n", "GET / HTTP/1.1", "Host: x\r\n", true},
		{"\r\n", "", "", true},
		{"bare LF\nx", "", "", false},
		{"no end", "", "", false},
		{"a\rb\r\n", "", "", false},
		{" folded\r\n", "", "", false},
		{"\tfolded\r\n", "", "", false},
	}
	for _, tt := range tests {
		line, rest, ok := CutLine([]byte(tt.in))
		if ok != tt.ok || string(line) != tt.line || string(rest) != tt.rest {
			t.Errorf("CutLine(%q) = %q, %q, %v", tt.in, line, rest, ok)
		}
	}
}

func TestParseLength(t *testing.T) {
	tests := []struct {
		in string
		n  int64
		ok bool
	}{
		{"0", 0, true}, {"007", 7, true}, {"123456789012345678", 123456789012345678, true},
		{"", 0, false}, {"+1", 0, false}, {"-1", 0, false}, {"1 ", 0, false}, {"0x10", 0, false},
		{"1234567890123456789", 0, false},
	}
	for _, tt := range tests {
		if n, ok := ParseLength([]byte(tt.in)); n != tt.n || ok != tt.ok {
			t.Errorf("ParseLength(%q) = %d, %v", tt.in, n, ok)
		}
	}
}

func TestValidTokenAndValue(t *testing.T) {
	for _, s := range []string{"GET", "X-Custom_1", "!#$%&'*+-.^_`|~"} {
		if !ValidToken(s) || !ValidToken([]byte(s)) {
			t.Errorf("ValidToken(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a b", "a:b", "a\"", "é", "a\x00", "(x)", "a/b"} {
		if ValidToken(s) {
			t.Errorf("ValidToken(%q) = true", s)
		}
	}
	for _, s := range []string{"", "text/plain; q=1", "a\tb", "ü"} {
		if !ValidValue(s) {
			t.Errorf("ValidValue(%q) = false", s)
		}
	}
	for _, s := range []string{"a\r\nb", "a\nb", "a\x00", "\x7f"} {
		if ValidValue(s) || ValidValue([]byte(s)) {
			t.Errorf("ValidValue(%q) = true", s)
		}
	}
}
