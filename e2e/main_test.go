// Package e2e holds the end-to-end tests: they build the real binaries, start
// them on loopback ports or run them as an MTA would, and talk to them with
// real clients. Files are named after the program they exercise.
package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var (
	binDir    string
	buildOnce = map[string]*sync.Once{}
	buildErr  = map[string]error{}
	buildMu   sync.Mutex
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "postkit-e2e-bin")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// moduleRoot is the directory holding go.mod.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// Bin builds cmd/NAME once per test run and returns the binary's path. A name
// with a slash is a package path from the module root ("scripts/run").
func Bin(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	once, ok := buildOnce[name]
	if !ok {
		once = new(sync.Once)
		buildOnce[name] = once
	}
	buildMu.Unlock()
	pkg, out := "./cmd/"+name, filepath.Join(binDir, name)
	if strings.Contains(name, "/") {
		pkg, out = "./"+name, filepath.Join(binDir, strings.ReplaceAll(name, "/", "-"))
	}
	once.Do(func() {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = moduleRoot()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if err != nil {
			err = &buildError{name: name, err: err, out: stderr.String()}
		}
		buildMu.Lock()
		buildErr[name] = err
		buildMu.Unlock()
	})
	buildMu.Lock()
	err := buildErr[name]
	buildMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type buildError struct {
	name string
	err  error
	out  string
}

func (e *buildError) Error() string {
	return "building " + e.name + ": " + e.err.Error() + "\n" + e.out
}
