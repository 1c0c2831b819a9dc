package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The test binary doubles as the runtime: run with this variable set it is afterlife-wasm-runtime.
const asRuntime = "AFTERLIFE_WASM_RUNTIME_TEST_AS_RUNTIME"

func TestMain(m *testing.M) {
	if os.Getenv(asRuntime) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// stubRunc records its argv (NUL-separated) and the config.json of $STUB_BUNDLE as runc saw them.
const stubRunc = `#!/bin/sh
for a in "$@"; do printf '%s\0' "$a"; done > "$STUB_OUT/argv"
if [ -f "$STUB_BUNDLE/config.json" ]; then cp "$STUB_BUNDLE/config.json" "$STUB_OUT/config.json"; fi
exit 3
`

type fixture struct {
	dir, bundle, out, runc, hostDir, cacheDir string
}

func newFixture(t *testing.T) *fixture {
	dir := t.TempDir()
	f := &fixture{
		dir: dir, bundle: filepath.Join(dir, "bundle"), out: filepath.Join(dir, "out"), runc: filepath.Join(dir, "runc"),
		hostDir: filepath.Join(dir, "node-bin"), cacheDir: filepath.Join(dir, "node-cache", "wasm"),
	}
	for _, d := range []string{f.bundle, f.out, f.hostDir, filepath.Join(f.bundle, "rootfs", "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.write(t, f.runc, stubRunc, 0o755)
	f.write(t, filepath.Join(f.hostDir, hostBinary), "#!/bin/sh\n", 0o755)
	return f
}

func (f *fixture) write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// run calls the runtime like the shim does and returns its exit code, stderr and the argv runc got.
func (f *fixture) run(t *testing.T, env []string, args ...string) (int, string, []string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(f.out, "argv"))
	cmd := exec.Command(self, args...)
	cmd.Dir = f.dir
	cmd.Env = append(os.Environ(), asRuntime+"=1", "AFTERLIFE_RUNC="+f.runc, "AFTERLIFE_WASM_HOST_DIR="+f.hostDir,
		"AFTERLIFE_WASM_CACHE_DIR="+f.cacheDir, "STUB_OUT="+f.out, "STUB_BUNDLE="+f.bundle)
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var argv []string
	if b, err := os.ReadFile(filepath.Join(f.out, "argv")); err == nil {
		argv = strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	}
	return code, stderr.String(), argv
}

// A config.json as containerd writes it, plus fields no OCI struct here knows about.
func specJSON(variant string, args ...string) string {
	annotations := `"io.kubernetes.cri.container-type": "container"`
	if variant != "" {
		annotations += `, "module.wasm.image/variant": "` + variant + `"`
	}
	argsJSON, _ := json.Marshal(args)
	return `{
  "ociVersion": "1.2.0",
  "process": {
    "user": {"uid": 0, "gid": 0},
    "args": ` + string(argsJSON) + `,
    "env": ["PATH=/usr/bin", "PORT=8080"],
    "cwd": "/",
    "capabilities": {"bounding": ["CAP_NET_BIND_SERVICE"]},
    "x-future-process-field": {"keep": [1, 2.50, "<&>"]}
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "fn",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid"]},
    {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/kubelet/hosts", "options": ["rbind", "rprivate", "rw"]}
  ],
  "annotations": {` + annotations + `},
  "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"}], "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}},
  "x-future-top-level": {"nested": {"deep": [true, null, "\u00e9 <tag> & more"]}}
}`
}

func generic(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return v
}

var createArgs = func(f *fixture) []string {
	return []string{"--root", "/run/containerd/runc/k8s.io", "--log", filepath.Join(f.dir, "log.json"), "--log-format", "json", "--systemd-cgroup",
		"create", "--bundle", f.bundle, "--pid-file", filepath.Join(f.dir, "pid"), "fn-1"}
}

func TestCreateCompatSmartWasmIsWrapped(t *testing.T) {
	f := newFixture(t)
	orig := specJSON("compat-smart", "/echo.wasm", "--flag")
	f.write(t, filepath.Join(f.bundle, "config.json"), orig, 0o600)
	args := createArgs(f)
	code, stderr, argv := f.run(t, nil, args...)
	if code != 3 || !reflect.DeepEqual(argv, args) {
		t.Fatalf("exit %d (stderr %q), runc argv %q", code, stderr, argv)
	}
	got, err := os.ReadFile(filepath.Join(f.out, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Expected: the original with only process.args replaced and two mounts appended.
	want := generic(t, []byte(orig))
	want["process"].(map[string]any)["args"] = []any{"/.afterlife/bin/afterlife-wasm-host", "--cache", "/.afterlife/cache", "/echo.wasm", "--flag"}
	want["mounts"] = append(want["mounts"].([]any),
		map[string]any{"destination": "/.afterlife/bin", "type": "bind", "source": f.hostDir, "options": []any{"rbind", "ro"}},
		map[string]any{"destination": "/.afterlife/cache", "type": "bind", "source": f.cacheDir, "options": []any{"rbind", "rw"}})
	if g := generic(t, got); !reflect.DeepEqual(g, want) {
		t.Fatalf("rewritten spec differs:\n got %v\nwant %v", g, want)
	}
	// Untouched values keep their bytes: no \u003c-style re-escaping, numbers as written.
	for _, s := range []string{`"<&>"`, `2.50`, `"\u00e9 <tag> & more"`} {
		if !bytes.Contains(got, []byte(s)) {
			t.Errorf("rewritten spec lost %s:\n%s", s, got)
		}
	}
	if info, err := os.Stat(f.cacheDir); err != nil || !info.IsDir() {
		t.Errorf("cache dir not created: %v", err)
	}
	if info, _ := os.Stat(filepath.Join(f.bundle, "config.json")); info.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %v, want 0600", info.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(f.bundle, ".config.json.*")); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

func TestCreateWithoutCacheDir(t *testing.T) {
	f := newFixture(t)
	f.write(t, filepath.Join(f.bundle, "config.json"), specJSON("compat-smart", "fn.wat"), 0o644)
	code, stderr, _ := f.run(t, []string{"AFTERLIFE_WASM_CACHE_DIR="}, "create", "-b", f.bundle, "fn-1")
	if code != 3 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	spec := generic(t, mustRead(t, filepath.Join(f.out, "config.json")))
	if args := spec["process"].(map[string]any)["args"]; !reflect.DeepEqual(args, []any{"/.afterlife/bin/afterlife-wasm-host", "fn.wat"}) {
		t.Errorf("args %v", args)
	}
	if mounts := spec["mounts"].([]any); len(mounts) != 3 {
		t.Errorf("want only the bin mount added, got %v", mounts)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCreateLeavesOtherContainersAlone(t *testing.T) {
	cases := map[string]string{
		"compat-smart, native entrypoint (queue-proxy)": specJSON("compat-smart", "/ko-app/queue"),
		"no annotation, .wasm entrypoint":               specJSON("", "/echo.wasm"),
		"unknown variant":                               specJSON("wasm", "/echo.wasm"),
		"compat, native file":                           specJSON("compat", "/bin/native"),
		"compat, missing file":                          specJSON("compat", "/bin/nowhere"),
	}
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.write(t, filepath.Join(f.bundle, "rootfs", "bin", "native"), "\x7fELF\x02\x01\x01", 0o755)
			f.write(t, filepath.Join(f.bundle, "config.json"), spec, 0o644)
			args := createArgs(f)
			code, stderr, argv := f.run(t, nil, args...)
			if code != 3 || !reflect.DeepEqual(argv, args) {
				t.Fatalf("exit %d (stderr %q), argv %q", code, stderr, argv)
			}
			if got := mustRead(t, filepath.Join(f.bundle, "config.json")); string(got) != spec {
				t.Errorf("config.json changed:\n%s", got)
			}
		})
	}
}

func TestCreateCompatDetectsWasmMagic(t *testing.T) {
	f := newFixture(t)
	// No .wasm suffix, relative to process.cwd, reached through a symlink inside the rootfs.
	f.write(t, filepath.Join(f.bundle, "rootfs", "bin", "fn-module"), "\x00asm\x01\x00\x00\x00", 0o644)
	if err := os.Symlink("fn-module", filepath.Join(f.bundle, "rootfs", "bin", "fn")); err != nil {
		t.Fatal(err)
	}
	spec := strings.Replace(specJSON("compat", "fn"), `"cwd": "/"`, `"cwd": "/bin"`, 1)
	f.write(t, filepath.Join(f.bundle, "config.json"), spec, 0o644)
	// Bundle from the working directory (no --bundle), as runc defaults.
	self, _ := os.Executable()
	cmd := exec.Command(self, "run", "--detach", "fn-1")
	cmd.Dir = f.bundle
	cmd.Env = append(os.Environ(), asRuntime+"=1", "AFTERLIFE_RUNC="+f.runc, "AFTERLIFE_WASM_HOST_DIR="+f.hostDir,
		"AFTERLIFE_WASM_CACHE_DIR=", "STUB_OUT="+f.out, "STUB_BUNDLE="+f.bundle)
	if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 3 {
		t.Fatalf("%v: %s", err, out)
	}
	args := generic(t, mustRead(t, filepath.Join(f.out, "config.json")))["process"].(map[string]any)["args"]
	if !reflect.DeepEqual(args, []any{"/.afterlife/bin/afterlife-wasm-host", "fn"}) {
		t.Errorf("args %v", args)
	}
}

func TestOtherCommandsPassThrough(t *testing.T) {
	f := newFixture(t)
	// A Wasm bundle: only create/run may touch it.
	spec := specJSON("compat-smart", "/echo.wasm")
	f.write(t, filepath.Join(f.bundle, "config.json"), spec, 0o644)
	global := []string{"--root", "/run/containerd/runc/k8s.io", "--log", filepath.Join(f.dir, "log.json"), "--log-format", "json"}
	for _, cmd := range [][]string{
		{"start", "fn-1"}, {"state", "fn-1"}, {"kill", "fn-1", "SIGTERM"}, {"kill", "--all", "fn-1", "9"},
		{"delete", "--force", "fn-1"}, {"features"}, {"exec", "--process", "/tmp/p.json", "--detach", "--pid-file", "/tmp/p", "fn-1"},
		{"ps", "--format", "json", "fn-1"}, {"update", "--resources", "-", "fn-1"}, {"events", "--stats", "fn-1"},
		{"pause", "fn-1"}, {"resume", "fn-1"}, {"checkpoint", "--image-path", "/tmp/i", "fn-1"},
		{"restore", "--image-path", "/tmp/i", "--bundle", f.bundle, "fn-1"}, {"--version"},
	} {
		args := append(append([]string{}, global...), cmd...)
		code, stderr, argv := f.run(t, nil, args...)
		if code != 3 || !reflect.DeepEqual(argv, args) {
			t.Errorf("%v: exit %d (stderr %q), runc argv %q", cmd, code, stderr, argv)
		}
	}
	if got := mustRead(t, filepath.Join(f.bundle, "config.json")); string(got) != spec {
		t.Errorf("config.json changed by a command other than create/run")
	}
}

func TestErrorsGoToStderrAndTheJSONLog(t *testing.T) {
	f := newFixture(t)
	log := filepath.Join(f.dir, "log.json")
	f.write(t, log, `{"level":"info","msg":"earlier line","time":"2026-01-01T00:00:00Z"}`+"\n", 0o644)
	// No config.json in the bundle.
	code, stderr, argv := f.run(t, nil, createArgs(f)...)
	if code != 1 || argv != nil {
		t.Fatalf("exit %d, runc called with %q", code, argv)
	}
	if !strings.Contains(stderr, "afterlife-wasm-runtime: reading the OCI spec") {
		t.Errorf("stderr %q", stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(mustRead(t, log))), "\n")
	var entry map[string]string
	if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &entry) != nil {
		t.Fatalf("log:\n%s", strings.Join(lines, "\n"))
	}
	if entry["level"] != "error" || !strings.Contains(entry["msg"], "config.json") || entry["time"] == "" {
		t.Errorf("log entry %v", entry)
	}

	// A Wasm container on a node without the host binary fails the same way, naming the fix.
	f.write(t, filepath.Join(f.bundle, "config.json"), specJSON("compat-smart", "/echo.wasm"), 0o644)
	code, stderr, _ = f.run(t, []string{"AFTERLIFE_WASM_HOST_DIR=" + f.dir}, createArgs(f)...)
	if code != 1 || !strings.Contains(stderr, "AFTERLIFE_WASM_HOST_DIR") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
