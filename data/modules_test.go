package data

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestModuleDir(t *testing.T) {
	const mod = "example.com/Some/mod@v1.2.3"
	inCache := filepath.FromSlash(escapeModulePath(mod))
	tests := []struct {
		name         string
		setup        func(t *testing.T, cache, download string) // lays out the fake cache and download folders
		envErr       error
		dlOut        string
		dlErr        error
		want         string // "<cache>" or "<download>"; "" means an error is expected
		msgs         []string
		wantDownload bool // whether go mod download must run
	}{
		{name: "cache hit", setup: func(t *testing.T, cache, _ string) { mkdir(t, filepath.Join(cache, inCache)) },
			want: "<cache>"},
		{name: "cache miss downloads", dlOut: `{"Dir": "<download>"}`, want: "<download>", wantDownload: true},
		{name: "partly extracted folder downloads again", setup: func(t *testing.T, cache, _ string) {
			mkdir(t, filepath.Join(cache, inCache))
			writeFile(t, cache, inCache+".partial", nil)
		}, dlOut: `{"Dir": "<download>"}`, want: "<download>", wantDownload: true},
		{name: "no go command", envErr: errors.New("exec: go: not found"), dlErr: errors.New("exec: go: not found"),
			msgs: []string{"Go module cache: exec: go: not found", "go mod download: exec: go: not found", mod}, wantDownload: true},
		{name: "download refused", dlOut: `{"Error": "unknown revision v1.2.3"}`, dlErr: errors.New("exit status 1"),
			msgs: []string{"Go module cache: ", "go mod download: unknown revision v1.2.3"}, wantDownload: true},
		{name: "download prints no folder", dlOut: `{}`, msgs: []string{"printed no Dir"}, wantDownload: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cache, download := t.TempDir(), t.TempDir()
			if tc.setup != nil {
				tc.setup(t, cache, download)
			}
			subst := strings.NewReplacer("<download>", download, `\`, `\\`)
			downloaded := false
			goCmd := func(args ...string) ([]byte, error) {
				if args[0] == "env" {
					return []byte(strings.ReplaceAll(`{"GOMODCACHE": "`+cache+`"}`, `\`, `\\`)), tc.envErr
				}
				downloaded = true
				if strings.Join(args, " ") != "mod download -json "+mod {
					t.Errorf("unexpected go %v", args)
				}
				return []byte(subst.Replace(tc.dlOut)), tc.dlErr
			}
			dir, err := moduleDir(goCmd, mod)
			if downloaded != tc.wantDownload {
				t.Errorf("go mod download ran: %v, want %v", downloaded, tc.wantDownload)
			}
			if tc.want != "" {
				want := strings.NewReplacer("<cache>", filepath.Join(cache, inCache), "<download>", download).Replace(tc.want)
				if err != nil || dir != want {
					t.Fatalf("got %q, %v; want %q", dir, err, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %q, want an error", dir)
			}
			for _, m := range tc.msgs {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("err = %q, want it to mention %q", err, m)
				}
			}
		})
	}
}

func TestModuleDirWantsVersion(t *testing.T) {
	for _, mod := range []string{"example.com/mod", "example.com/mod@", "@v1.0.0"} {
		if _, err := moduleDir(func(...string) ([]byte, error) {
			t.Fatal("go command run for a malformed module")
			return nil, nil
		}, mod); err == nil || !strings.Contains(err.Error(), "want path@version") {
			t.Errorf("moduleDir(%q) = %v, want a path@version error", mod, err)
		}
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}
