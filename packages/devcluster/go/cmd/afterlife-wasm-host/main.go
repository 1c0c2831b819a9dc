// Command afterlife-wasm-host runs one WASI preview1 command module: the dev cluster's stand-in
// for WasmEdge under crun.
//
//	afterlife-wasm-host [--cache DIR] [--listen HOST] MODULE.wasm [ARGS...]
//
// The guest gets the process's args (MODULE first) and environment, its stdio, the root
// directory as "/", and a TCP listener on HOST:$PORT (default 0.0.0.0:8080) as fd 3.
//
// Exit status: the guest's exit code; 134 after a trap (as a native process that aborted);
// 1 when the module cannot be read, compiled or linked; 2 for bad usage; 143 / 130 on
// SIGTERM / SIGINT — the host exits at once, as WasmEdge killed by the signal would: WASI
// preview1 has no signals, so the guest gets no chance to react either way.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

const exitTrap = 134

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	flags := flag.NewFlagSet("afterlife-wasm-host", flag.ContinueOnError)
	cacheDir := flags.String("cache", "", "compiled-module cache `dir`ectory (created if missing)")
	listenHost := flags.String("listen", envOr("AFTERLIFE_WASM_LISTEN_HOST", "0.0.0.0"), "IP `address` of the guest's listener (port: $PORT)")
	flags.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: afterlife-wasm-host [--cache DIR] [--listen HOST] MODULE.wasm [ARGS...]")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() == 0 {
		flags.Usage()
		return 2
	}
	path := flags.Arg(0)

	// The signal ends everything at once; see the package comment.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() { os.Exit(128 + int((<-signals).(syscall.Signal))) }()

	wasm, err := os.ReadFile(path)
	if err != nil {
		return fail("%v", err)
	}
	if !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		return fail("%s is not a WebAssembly module (it does not start with the \\0asm magic)", path)
	}
	port, err := strconv.Atoi(envOr("PORT", "8080"))
	if err != nil || port < 0 || port > 65535 {
		return fail("PORT=%q is not a TCP port", os.Getenv("PORT"))
	}
	listenFD, err := listenTCP(*listenHost, port)
	if err != nil {
		return fail("listening on %s: %v", net.JoinHostPort(*listenHost, strconv.Itoa(port)), err)
	}

	ctx := context.Background()
	r, compiled, err := compile(ctx, wasm, *cacheDir)
	if err != nil {
		return fail("compiling %s: %v", path, err)
	}
	wasi := newWASIHost(listenFD, 1)
	if err := wasi.instantiate(ctx, r); err != nil {
		return fail("WASI: %v", err)
	}
	module := wazero.NewModuleConfig().
		WithArgs(append([]string{path}, flags.Args()[1:]...)...).
		WithStdin(os.Stdin).WithStdout(os.Stdout).WithStderr(os.Stderr).
		WithFSConfig(wazero.NewFSConfig().WithDirMount("/", "/")).
		WithSysWalltime().WithNanotime(wasi.nanotime, 1).WithSysNanosleep().
		WithRandSource(rand.Reader).
		WithStartFunctions() // _start below, so link errors and traps are told apart
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); k != "" {
			module = module.WithEnv(k, v)
		}
	}
	guest, err := r.InstantiateModule(ctx, compiled, module)
	if err != nil {
		return fail("instantiating %s: %v", path, err)
	}
	start := guest.ExportedFunction("_start")
	if start == nil {
		return fail("%s exports no _start: not a WASI command", path)
	}
	// Hand the compiler's garbage back (~100 MB after a cold compile of a Go module) or a
	// long-running guest idles on it; a second in, so the first answer does not wait for it.
	time.AfterFunc(time.Second, debug.FreeOSMemory)
	_, err = start.Call(ctx)
	var exit *sys.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return int(exit.ExitCode())
	}
	fmt.Fprintf(os.Stderr, "wasm trap: %v\n", err)
	return exitTrap
}

// compile compiles ahead of time, through the on-disk cache when there is one. The cache only
// saves time, so one this process cannot use (wazero then fails the compile: say, a node
// directory another uid owns) costs a warning, not the container.
func compile(ctx context.Context, wasm []byte, cacheDir string) (wazero.Runtime, wazero.CompiledModule, error) {
	ctx = experimental.WithCompilationWorkers(ctx, runtime.GOMAXPROCS(0))
	if cacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
		if err == nil {
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCompilationCache(cache))
			var compiled wazero.CompiledModule
			if compiled, err = r.CompileModule(ctx, wasm); err == nil {
				return r, compiled, nil
			}
			_ = r.Close(ctx)
		}
		fmt.Fprintf(os.Stderr, "afterlife-wasm-host: compiling without the cache in %s: %v\n", cacheDir, err)
	}
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	compiled, err := r.CompileModule(ctx, wasm)
	return r, compiled, err
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "afterlife-wasm-host: "+format+"\n", args...)
	return 1
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

// listenTCP opens the guest's listener as a bare non-blocking descriptor the host polls itself.
func listenTCP(host string, port int) (int, error) {
	ip := net.ParseIP(host)
	if ip == nil {
		return -1, fmt.Errorf("%q is not an IP address", host)
	}
	family, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Port: port, Addr: [16]byte(ip.To16())})
	if ip4 := ip.To4(); ip4 != nil {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: [4]byte(ip4)}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err == nil {
		if err = unix.Bind(fd, sa); err == nil {
			err = unix.Listen(fd, unix.SOMAXCONN)
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
