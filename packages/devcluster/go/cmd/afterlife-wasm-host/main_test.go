package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the host: run with this variable set it is afterlife-wasm-host.
const asHost = "AFTERLIFE_WASM_HOST_TEST_AS_HOST"

var echoWasm, probeWasm, sharedCache string

func TestMain(m *testing.M) {
	if os.Getenv(asHost) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "afterlife-wasm-host-test-")
	if err != nil {
		panic(err)
	}
	echoWasm, probeWasm, sharedCache = filepath.Join(dir, "echo.wasm"), filepath.Join(dir, "probe.wasm"), filepath.Join(dir, "cache")
	code := 1
	if err = buildWasm(echoWasm, "../../functions/echo", "."); err == nil {
		err = buildWasm(probeWasm, ".", "./testdata/probe")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildWasm(out, dir, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s in %s: %v\n%s", pkg, dir, err, b)
	}
	return nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type hostProc struct {
	cmd            *exec.Cmd
	started        time.Time
	stdout, stderr syncBuffer
	done           chan struct{}
	port           int
}

// startHost runs the host on a free loopback port; it is killed when the test ends.
func startHost(t *testing.T, env []string, args ...string) *hostProc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &hostProc{cmd: exec.Command(self, args...), done: make(chan struct{}), port: freePort(t)}
	p.cmd.Env = append(os.Environ(), asHost+"=1", "AFTERLIFE_WASM_LISTEN_HOST=127.0.0.1", "PORT="+strconv.Itoa(p.port))
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (p *hostProc) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", p.port, path) }

// waitReady returns how long after start /healthz first answered.
func (p *hostProc) waitReady(t *testing.T) time.Duration {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		select {
		case <-p.done:
			t.Fatalf("host exited (%v) before answering:\n%s%s", p.cmd.ProcessState, p.stdout.String(), p.stderr.String())
		default:
		}
		if resp, err := client.Get(p.url("/healthz")); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("/healthz: %d %q", resp.StatusCode, body)
			}
			return time.Since(p.started)
		}
	}
	t.Fatalf("host not ready after 3m:\n%s", p.stderr.String())
	return 0
}

func (p *hostProc) exitCode(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("host still running after %v:\n%s", within, p.stderr.String())
		return 0
	}
}

func (p *hostProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	p.exitCode(t, 10*time.Second)
}

// Runs first, on the still empty shared cache, so the other tests start warm.
func TestColdThenWarmStart(t *testing.T) {
	cold := startHost(t, nil, "--cache", sharedCache, echoWasm)
	coldTime := cold.waitReady(t)
	cold.stop(t)
	entries, _ := filepath.Glob(filepath.Join(sharedCache, "*", "*"))
	if len(entries) == 0 {
		t.Fatalf("compilation cache %s is empty after a run", sharedCache)
	}
	warm := startHost(t, nil, "--cache", sharedCache, echoWasm)
	warmTime := warm.waitReady(t)
	warm.stop(t)
	t.Logf("start to first answer: cold cache %d ms, warm cache %d ms (%d cache entries)", coldTime.Milliseconds(), warmTime.Milliseconds(), len(entries))
}

func cpuTicks(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are fields 14 and 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return utime + stime
}

func rssKiB(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func rawRequest(t *testing.T, conn net.Conn, r *bufio.Reader, req string) *http.Response {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestServesEchoAndIdlesWithoutCPU(t *testing.T) {
	p := startHost(t, nil, "--cache", sharedCache, echoWasm)
	p.waitReady(t)

	req, _ := http.NewRequest(http.MethodPost, p.url("/"), strings.NewReader(`{"hello":"wasm"}`))
	for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "evt%201", "Ce-Source": "/test", "Ce-Type": "dev.afterlife.test", "Content-Type": "application/json"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Ce-Echoid") != "evt%201" || !strings.Contains(string(body), `"id":"evt 1"`) {
		t.Fatalf("POST /: %d ce-echoid=%q %s", resp.StatusCode, resp.Header.Get("Ce-Echoid"), body)
	}

	// One keep-alive connection stays open (and idle) while another comes and goes: the guest
	// must serve both, so it may neither block in accept nor in a read.
	keep, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.port))
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	keepR := bufio.NewReader(keep)
	get := "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	rawRequest(t, keep, keepR, get)
	other, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.port))
	if err != nil {
		t.Fatal(err)
	}
	if resp := rawRequest(t, other, bufio.NewReader(other), get); resp.StatusCode != http.StatusOK {
		t.Fatalf("second connection: %d", resp.StatusCode)
	}
	other.Close()
	if resp := rawRequest(t, keep, keepR, get); resp.StatusCode != http.StatusOK {
		t.Fatalf("keep-alive connection: %d", resp.StatusCode)
	}

	time.Sleep(200 * time.Millisecond) // let the guest settle into poll_oneoff
	pid := p.cmd.Process.Pid
	before, start := cpuTicks(t, pid), time.Now()
	time.Sleep(3 * time.Second)
	ticks, elapsed := cpuTicks(t, pid)-before, time.Since(start)
	percent := float64(ticks) / 100 / elapsed.Seconds() * 100 // USER_HZ is 100 on Linux
	t.Logf("idle CPU %.2f%% of one core (%d ticks in %v), RSS %s (test binary as host)", percent, ticks, elapsed.Round(time.Millisecond), rssKiB(pid))
	if percent >= 1 {
		t.Fatalf("idle host used %.2f%% of a core", percent)
	}
	if resp := rawRequest(t, keep, keepR, get); resp.StatusCode != http.StatusOK {
		t.Fatalf("keep-alive connection after idling: %d", resp.StatusCode)
	}
}

func TestGuestGetsArgsEnvRootAndExitCode(t *testing.T) {
	file := filepath.Join(t.TempDir(), "seen-through-root")
	if err := os.WriteFile(file, []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startHost(t, []string{"PROBE_VALUE=v=1", "PROBE_FILE=" + file, "PROBE_EXIT=7"}, "--cache", sharedCache, probeWasm, "a b", "c")
	if code := p.exitCode(t, 2*time.Minute); code != 7 {
		t.Fatalf("exit %d, want 7\n%s%s", code, p.stdout.String(), p.stderr.String())
	}
	for _, want := range []string{
		fmt.Sprintf("args=[%q \"a b\" \"c\"]", probeWasm), "env=v=1", `file="from the host" err=<nil>`, "slept=true",
	} {
		if !strings.Contains(p.stdout.String(), want) {
			t.Errorf("guest output lacks %s:\n%s", want, p.stdout.String())
		}
	}
}

func TestUnusableCacheOnlyWarns(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "cache")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startHost(t, []string{"PROBE_EXIT=0"}, "--cache", notADir, probeWasm)
	if code := p.exitCode(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
	if s := p.stderr.String(); !strings.Contains(s, "compiling without the cache in "+notADir) {
		t.Fatalf("stderr: %s", s)
	}
}

// module assembles a Wasm binary from sections (id, contents); every size here is < 128.
func module(sections ...[]byte) []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		out = append(out, s[0], byte(len(s)-1))
		out = append(out, s[1:]...)
	}
	return out
}

func TestTrapExitsNonZeroWithMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trap.wasm")
	trap := module(
		[]byte{1, 1, 0x60, 0, 0}, // type: () -> ()
		[]byte{3, 1, 0},          // function 0 has type 0
		append(append([]byte{7, 1, 6}, "_start"...), 0, 0), // export "_start" = func 0
		[]byte{10, 1, 3, 0, 0x00, 0x0b},                    // body: unreachable
	)
	if err := os.WriteFile(path, trap, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startHost(t, nil, path)
	if code := p.exitCode(t, time.Minute); code != exitTrap {
		t.Fatalf("exit %d, want %d\n%s", code, exitTrap, p.stderr.String())
	}
	if s := p.stderr.String(); !strings.HasPrefix(s, "wasm trap: ") || !strings.Contains(s, "unreachable") {
		t.Fatalf("stderr: %s", s)
	}
}

func TestNotWasmIsAClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "script.wasm")
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := startHost(t, nil, path)
	if code := p.exitCode(t, time.Minute); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if s := p.stderr.String(); !strings.Contains(s, path+" is not a WebAssembly module") {
		t.Fatalf("stderr: %s", s)
	}
}

func TestSignalsEndTheGuestPromptly(t *testing.T) {
	for sig, want := range map[syscall.Signal]int{syscall.SIGTERM: 143, syscall.SIGINT: 130} {
		p := startHost(t, nil, "--cache", sharedCache, echoWasm)
		p.waitReady(t)
		sent := time.Now()
		if err := p.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if code := p.exitCode(t, 2*time.Second); code != want {
			t.Errorf("%v: exit %d, want %d", sig, code, want)
		}
		t.Logf("%v: exited %d after %v", sig, want, time.Since(sent).Round(time.Millisecond))
	}
}
