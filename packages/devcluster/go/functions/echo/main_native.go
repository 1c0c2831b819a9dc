//go:build !wasip1

package main

import (
	"net/http"
	"os"
)

// The native build of the same server, the baseline benchmarks compare the Wasm build with.
// Build: CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o echo .
func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	// One line at start, so `kubectl logs` shows the server ran.
	_, _ = os.Stderr.WriteString("echo: serving on :" + port + "\n")
	if err := http.ListenAndServe(":"+port, newHandler()); err != nil {
		_, _ = os.Stderr.WriteString("echo: " + err.Error() + "\n")
		os.Exit(1)
	}
}
