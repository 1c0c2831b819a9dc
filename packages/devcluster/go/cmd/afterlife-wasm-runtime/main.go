// Command afterlife-wasm-runtime is the dev cluster's OCI runtime for the wasmedge
// RuntimeClass: containerd's runc shim calls it exactly as it calls runc, and every call execs
// the real runc with the same arguments. Only `create` and `run` first look at the bundle: a
// container crun would run under WasmEdge (annotation module.wasm.image/variant, crun's
// compat-smart / compat rules) gets its entrypoint wrapped in afterlife-wasm-host, bind-mounted
// from the node. Everything else — other containers of the pod, other commands — passes through.
//
// Environment:
//
//	AFTERLIFE_RUNC            runc to exec (default: runc next to this executable, then $PATH)
//	AFTERLIFE_WASM_HOST_DIR   directory holding afterlife-wasm-host (default: this executable's)
//	AFTERLIFE_WASM_CACHE_DIR  node directory for compiled modules, shared by containers (default: none)
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	variantAnnotation = "module.wasm.image/variant"
	hostBinary        = "afterlife-wasm-host"
	binMount          = "/.afterlife/bin"
	cacheMount        = "/.afterlife/cache"
)

func main() {
	args := os.Args[1:]
	g := parseGlobal(args)
	if g.command == "create" || g.command == "run" {
		if err := wrapWasmEntrypoint(bundleDir(args[g.commandIndex+1:])); err != nil {
			g.fail(err)
		}
	}
	runc, err := runcPath()
	if err != nil {
		g.fail(err)
	}
	err = syscall.Exec(runc, append([]string{runc}, args...), os.Environ())
	g.fail(fmt.Errorf("exec %s: %w", runc, err))
}

type global struct {
	logFile, logFormat string
	command            string
	commandIndex       int
}

// parseGlobal finds runc's global --log / --log-format and the subcommand after the globals.
func parseGlobal(args []string) global {
	g := global{commandIndex: len(args)}
	valued := map[string]bool{"root": true, "log": true, "log-format": true, "criu": true, "rootless": true}
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") {
			g.command, g.commandIndex = args[i], i
			break
		}
		if valued[name] && !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		switch name {
		case "log":
			g.logFile = value
		case "log-format":
			g.logFormat = value
		}
	}
	return g
}

// bundleDir returns create's / run's --bundle (-b), by default the working directory.
func bundleDir(args []string) string {
	valued := map[string]bool{"console-socket": true, "pid-file": true, "preserve-fds": true, "pidfd-socket": true}
	for i := 0; i < len(args) && args[i] != "--"; i++ {
		if !strings.HasPrefix(args[i], "-") {
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if (name == "bundle" || name == "b" || valued[name]) && !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		if name == "bundle" || name == "b" {
			return value
		}
	}
	return "."
}

// fail reports like runc does — stderr, and a JSON line in --log, which containerd shows —
// and exits 1.
func (g global) fail(err error) {
	msg := "afterlife-wasm-runtime: " + err.Error()
	fmt.Fprintln(os.Stderr, msg)
	if g.logFile != "" && g.logFormat == "json" {
		line, _ := json.Marshal(map[string]string{"level": "error", "msg": msg, "time": time.Now().Format(time.RFC3339Nano)})
		if f, err := os.OpenFile(g.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			_, _ = f.Write(append(line, '\n'))
			_ = f.Close()
		}
	}
	os.Exit(1)
}

func runcPath() (string, error) {
	if p := os.Getenv("AFTERLIFE_RUNC"); p != "" {
		return p, nil
	}
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), "runc"); isExecutable(p) {
			return p, nil
		}
	}
	return exec.LookPath("runc")
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0
}

type mount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type"`
	Source      string   `json:"source"`
	Options     []string `json:"options"`
}

// wrapWasmEntrypoint rewrites <bundle>/config.json for a Wasm container and leaves any other
// alone. Fields are kept as raw JSON so whatever this code does not know survives as it was.
func wrapWasmEntrypoint(bundle string) error {
	path := filepath.Join(bundle, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the OCI spec: %w", err)
	}
	var spec, process map[string]json.RawMessage
	var annotations map[string]string
	var args []string
	if err := unmarshal(raw, &spec, "config.json"); err != nil {
		return err
	}
	if err := unmarshal(spec["annotations"], &annotations, "annotations"); err != nil {
		return err
	}
	variant := annotations[variantAnnotation]
	if variant != "compat-smart" && variant != "compat" {
		return nil
	}
	if err := unmarshal(spec["process"], &process, "process"); err != nil {
		return err
	}
	if err := unmarshal(process["args"], &args, "process.args"); err != nil || len(args) == 0 {
		return err // no entrypoint: runc will say so
	}
	if !isWasm(variant, bundle, spec, process, args[0]) {
		return nil
	}

	hostDir := os.Getenv("AFTERLIFE_WASM_HOST_DIR")
	if hostDir == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		hostDir = filepath.Dir(self)
	}
	if !isExecutable(filepath.Join(hostDir, hostBinary)) {
		return fmt.Errorf("no executable %s in %s (AFTERLIFE_WASM_HOST_DIR)", hostBinary, hostDir)
	}
	var mounts []json.RawMessage
	if err := unmarshal(spec["mounts"], &mounts, "mounts"); err != nil {
		return err
	}
	add := func(m mount) {
		b, _ := marshal(m)
		mounts = append(mounts, b)
	}
	add(mount{binMount, "bind", hostDir, []string{"rbind", "ro"}})
	wrapped := []string{binMount + "/" + hostBinary}
	if cacheDir := os.Getenv("AFTERLIFE_WASM_CACHE_DIR"); cacheDir != "" {
		if err := os.MkdirAll(cacheDir, 0o755); err != nil {
			return fmt.Errorf("compile cache: %w", err)
		}
		add(mount{cacheMount, "bind", cacheDir, []string{"rbind", "rw"}})
		wrapped = append(wrapped, "--cache", cacheMount)
	}
	// runc creates the mount destinations inside the rootfs.
	if process["args"], err = marshal(append(wrapped, args...)); err != nil {
		return err
	}
	if spec["process"], err = marshal(process); err != nil {
		return err
	}
	if spec["mounts"], err = marshal(mounts); err != nil {
		return err
	}
	out, err := marshal(spec)
	if err != nil {
		return err
	}
	return writeAtomically(path, out)
}

// isWasm applies crun's rules: compat-smart goes by the entrypoint's name, compat by the
// \0asm magic of the entrypoint file in the rootfs.
func isWasm(variant, bundle string, spec, process map[string]json.RawMessage, entrypoint string) bool {
	if variant == "compat-smart" {
		return strings.HasSuffix(entrypoint, ".wasm") || strings.HasSuffix(entrypoint, ".wat")
	}
	var root struct{ Path string }
	var cwd string
	_ = json.Unmarshal(spec["root"], &root)
	_ = json.Unmarshal(process["cwd"], &cwd)
	rootfs := root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if !filepath.IsAbs(entrypoint) {
		entrypoint = filepath.Join("/", cwd, entrypoint)
	}
	// os.Root keeps symlinks inside the rootfs (an absolute one that would escape it counts as
	// not Wasm; runc then runs the file natively).
	r, err := os.OpenRoot(rootfs)
	if err != nil {
		return false
	}
	defer r.Close()
	f, err := r.Open(strings.TrimPrefix(filepath.Clean(entrypoint), "/"))
	if err != nil {
		return false
	}
	defer f.Close()
	magic := make([]byte, 4)
	_, err = f.Read(magic)
	return err == nil && bytes.Equal(magic, []byte("\x00asm"))
}

func unmarshal(raw json.RawMessage, v any, what string) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("parsing %s: %w", what, err)
	}
	return nil
}

// marshal leaves <, > and & alone, so untouched strings keep their bytes.
func marshal(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func writeAtomically(path string, data []byte) (err error) {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config.json.*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	_, err = tmp.Write(data)
	err = errors.Join(err, tmp.Chmod(info.Mode().Perm()), tmp.Sync(), tmp.Close())
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
