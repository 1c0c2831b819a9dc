//go:build wasip1 && wasmedge

package main

import (
	"net/http"
	"os"

	"github.com/dispatchrun/net/wasip1"
)

// The real crun+WasmEdge build: a long-running WASI command that owns its TCP listener on
// $PORT through WasmEdge's socket extension (wasip1.Listen), exactly like a container process.
// Build: go get github.com/dispatchrun/net@latest && GOOS=wasip1 GOARCH=wasm go build -tags wasmedge -o echo.wasm .
func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	listener, err := wasip1.Listen("tcp", "0.0.0.0:"+port)
	if err != nil {
		_, _ = os.Stderr.WriteString("echo: listen: " + err.Error() + "\n")
		os.Exit(1)
	}
	if err := http.Serve(listener, newHandler()); err != nil {
		_, _ = os.Stderr.WriteString("echo: serve: " + err.Error() + "\n")
		os.Exit(1)
	}
}
