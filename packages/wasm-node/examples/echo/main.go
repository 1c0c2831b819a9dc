//go:build !wasmedge

package main

import (
	"net/http/cgi"
	"os"
)

// The Afterlife wasm-node build: a WASI command that serves exactly one HTTP request per run
// over CGI/1.1 (RFC 3875) — request meta-variables in the environment, body on stdin, CGI
// response (Status + headers, blank line, body) on stdout. The host owns the TCP listener.
func main() {
	if err := cgi.Serve(newHandler()); err != nil {
		_, _ = os.Stderr.WriteString("echo: " + err.Error() + "\n")
		os.Exit(1)
	}
}
