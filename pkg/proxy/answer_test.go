package proxy

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestReadPlainAnswer(t *testing.T) {
	tests := []struct {
		name   string
		head   string
		method string
		plain  bool
		code   int
		length int64
		stream bool
		fields http.Header
	}{
		{name: "watchdog answer", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nX-Duration-Seconds: 0.001\r\nDate: x\r\n\r\n",
			plain: true, code: 200, length: 5,
			fields: http.Header{"Content-Length": {"5"}, "Content-Type": {"text/plain"}, "X-Duration-Seconds": {"0.001"}, "Date": {"x"}}},
		{name: "field name not a token", head: "HTTP/1.1 404\r\ncontent-length:0\r\nSet-Cookie: a=1\r\nset-cookie:  b=2 \t\r\nX-ünicode-free: v\r\n\r\n"},
		{name: "repeated field", head: "HTTP/1.1 500 Internal\r\nContent-Length: 0\r\nSet-Cookie: a=1\r\nset-cookie:  b=2 \t\r\nx-custom: 1\r\n\r\n",
			plain: true, code: 500, length: 0,
			fields: http.Header{"Content-Length": {"0"}, "Set-Cookie": {"a=1", "b=2"}, "X-Custom": {"1"}}},
		{name: "hop-by-hop fields dropped", head: "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nLocation: /x\r\n\r\n",
			plain: true, code: 201, length: 2, fields: http.Header{"Content-Length": {"2"}, "Location": {"/x"}}},
		{name: "event stream", head: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nContent-Length: 10\r\n\r\n",
			plain: true, code: 200, length: 10, stream: true,
			fields: http.Header{"Content-Length": {"10"}, "Content-Type": {"text/event-stream; charset=utf-8"}}},
		{name: "chunked", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "no length", head: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"},
		{name: "two lengths", head: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"},
		{name: "signed length", head: "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n"},
		{name: "trailers announced", head: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTrailer: X-Sum\r\n\r\n"},
		{name: "connection close", head: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"},
		{name: "connection option", head: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: X-Secret\r\nX-Secret: 1\r\n\r\n"},
		{name: "HTTP/1.0", head: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"},
		{name: "informational", head: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"},
		{name: "no content", head: "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"},
		{name: "not modified", head: "HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n"},
		{name: "answer to HEAD", head: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", method: http.MethodHead},
		{name: "bare LF", head: "HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n"},
		{name: "folded line", head: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-A: 1\r\n 2\r\n\r\n"},
		{name: "space before colon", head: "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n"},
		{name: "control byte in value", head: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-A: a\x00b\r\n\r\n"},
		{name: "status not three digits", head: "HTTP/1.1 2000 OK\r\nContent-Length: 1\r\n\r\n"},
		{name: "head not complete", head: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			br := bufio.NewReader(strings.NewReader(tt.head + "body-and-more"))
			w := httptest.NewRecorder()
			a, ok, err := readPlainAnswer(br, method, w)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.plain {
				t.Fatalf("plain = %v, want %v", ok, tt.plain)
			}
			if !ok {
				// Nothing consumed, nothing added: http.ReadResponse reads it all.
				if len(w.Header()) != 0 {
					t.Errorf("fields added: %v", w.Header())
				}
				if rest, _ := io.ReadAll(br); string(rest) != tt.head+"body-and-more" {
					t.Errorf("consumed: left %q", rest)
				}
				return
			}
			if a.code != tt.code || a.length != tt.length || a.stream != tt.stream {
				t.Errorf("got %+v, want code %d length %d stream %v", a, tt.code, tt.length, tt.stream)
			}
			if !reflect.DeepEqual(w.Header(), tt.fields) {
				t.Errorf("fields %v, want %v", w.Header(), tt.fields)
			}
			if rest, _ := io.ReadAll(br); string(rest) != "body-and-more" {
				t.Errorf("left %q after the head", rest)
			}
		})
	}
}

func TestReadPlainAnswerAddsToExistingFields(t *testing.T) {
	w := httptest.NewRecorder()
	w.Header().Set("Vary", "Origin")
	br := bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nVary: Accept\r\nContent-Length: 0\r\n\r\n"))
	if _, ok, err := readPlainAnswer(br, http.MethodGet, w); !ok || err != nil {
		t.Fatalf("plain %v, %v", ok, err)
	}
	if got := w.Header()["Vary"]; !reflect.DeepEqual(got, []string{"Origin", "Accept"}) {
		t.Fatalf("Vary = %q", got)
	}
}

func TestPlainBody(t *testing.T) {
	b := &plainBody{br: bufio.NewReader(strings.NewReader("0123456789")), left: 4}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "0123" {
		t.Fatalf("read %q, %v", got, err)
	}
	b = &plainBody{br: bufio.NewReader(strings.NewReader("01")), left: 4}
	if _, err := io.ReadAll(b); err != io.ErrUnexpectedEOF {
		t.Fatalf("short body: %v, want ErrUnexpectedEOF", err)
	}
}

// FuzzPlainAnswer checks that whatever readPlainAnswer takes,
// http.ReadResponse reads alike: the same status, length and end-to-end
// fields, and the same body after the head.
func FuzzPlainAnswer(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
		"HTTP/1.1 404\r\ncontent-length:0\r\nSet-Cookie: a=1\r\nset-cookie:  b=2 \t\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, Keep-Alive\r\nKeep-Alive: timeout=5\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 599 x\r\nContent-Length: 00\r\nX-A:\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w := httptest.NewRecorder()
		br := bufio.NewReader(strings.NewReader(s))
		a, ok, err := readPlainAnswer(br, http.MethodGet, w)
		if err != nil || !ok {
			return
		}
		body, _ := io.ReadAll(&plainBody{br: br, left: a.length})

		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(s)), nil)
		if err != nil {
			t.Fatalf("plain took an answer http.ReadResponse refuses: %v", err)
		}
		want := http.Header{}
		copyEndToEnd(want, resp.Header)
		if resp.StatusCode != a.code || resp.ContentLength != a.length || resp.Close {
			t.Fatalf("plain %+v; ReadResponse status %d length %d close %v", a, resp.StatusCode, resp.ContentLength, resp.Close)
		}
		if !reflect.DeepEqual(w.Header(), want) {
			t.Fatalf("fields %v; ReadResponse's %v", w.Header(), want)
		}
		if a.stream != isStream(resp.Header.Get("Content-Type")) {
			t.Fatalf("stream %v", a.stream)
		}
		wantBody, _ := io.ReadAll(resp.Body)
		if string(body) != string(wantBody) {
			t.Fatalf("body %q; ReadResponse's %q", body, wantBody)
		}
	})
}
