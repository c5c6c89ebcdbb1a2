// Command fn-job is a job-mode test function for the dockerfaasd e2e suite:
// it runs once per call, reads its request body from stdin and answers on
// stdout, as a classic OpenFaaS watchdog function does. What it does is
// chosen by the query string (Http_Query, as the daemon passes it):
//
//	mode=echo     stdout is stdin (the default)
//	mode=upper    stdout is stdin in upper case
//	mode=env      stdout is JSON: args, the whole environment, stdin, the
//	              process's uid
//	cat=PATH      stdout is the content of file PATH (a secret)
//	write=PATH    tries to write file PATH; stdout "ok" or the error
//	bytes=N       writes N bytes of output (a pattern) instead
//	stderr=TEXT   writes TEXT as one line to stderr (repeatable)
//	sleep=D       sleeps D (a Go duration) before answering
//	alloc=N       allocates and touches N MiB (to be OOM-killed)
//	exit=N        exits with code N after answering
//	hold=D        waits D after answering, before it exits
//
// Without exit in the query, EXIT_CODE from the environment is the exit
// code. It is built by the harness into a FROM scratch image.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	q, _ := url.ParseQuery(os.Getenv("Http_Query"))
	for _, line := range q["stderr"] {
		fmt.Fprintln(os.Stderr, line)
	}
	if d, err := time.ParseDuration(q.Get("sleep")); err == nil {
		time.Sleep(d)
	}
	if n, err := strconv.Atoi(q.Get("alloc")); err == nil && n > 0 {
		var keep [][]byte
		for i := 0; i < n; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		fmt.Printf("allocated %d MiB (%d)\n", n, len(keep))
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "read stdin:", err)
		os.Exit(2)
	}
	switch {
	case q.Get("cat") != "":
		b, err := os.ReadFile(q.Get("cat"))
		if err != nil {
			fmt.Println(err)
		}
		os.Stdout.Write(b)
	case q.Get("write") != "":
		if err := os.WriteFile(q.Get("write"), []byte("x"), 0o644); err != nil {
			fmt.Print(err)
		} else {
			fmt.Print("ok")
		}
	case q.Get("bytes") != "":
		n, _ := strconv.Atoi(q.Get("bytes"))
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
		for n > 0 {
			k := min(n, len(chunk))
			os.Stdout.Write(chunk[:k])
			n -= k
		}
	case q.Get("mode") == "upper":
		os.Stdout.Write(bytes.ToUpper(in))
	case q.Get("mode") == "env":
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"args": os.Args, "env": env, "stdin": string(in), "uid": os.Getuid()})
	default:
		os.Stdout.Write(in)
	}
	if d, err := time.ParseDuration(q.Get("hold")); err == nil {
		time.Sleep(d)
	}
	code := os.Getenv("EXIT_CODE")
	if v := q.Get("exit"); v != "" {
		code = v
	}
	if n, err := strconv.Atoi(code); err == nil {
		os.Exit(n)
	}
}
