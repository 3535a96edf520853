package cluster

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || bytes.Equal(a, b) {
		t.Fatalf("keys %x and %x: want two different 32-byte keys", a, b)
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fileKey := bytes.Repeat([]byte{1}, 16)
	envKey := bytes.Repeat([]byte{2}, 24)
	cases := []struct {
		name    string
		file    string
		env     string
		want    []byte
		wantErr error
		mention string // the error must name its source
	}{
		{"file", write("good", EncodeKey(fileKey)+"\n"), "", fileKey, nil, ""},
		{"env", "", EncodeKey(envKey), envKey, nil, ""},
		{"file beats env", write("good2", EncodeKey(fileKey)), EncodeKey(envKey), fileKey, nil, ""},
		{"none", "", "", nil, ErrNoKey, KeyEnv},
		{"bad base64 in file", write("bad64", "not base64!"), "", nil, ErrKeyEncoding, "bad64"},
		{"bad base64 in env", "", "%%%", nil, ErrKeyEncoding, KeyEnv},
		{"wrong length in file", write("short", EncodeKey([]byte("short"))), "", nil, ErrKeyLength, "short"},
		{"wrong length in env", "", EncodeKey(make([]byte, 33)), nil, ErrKeyLength, KeyEnv},
		{"missing file", filepath.Join(dir, "absent"), EncodeKey(envKey), nil, fs.ErrNotExist, "key file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(KeyEnv, tc.env)
			got, err := LoadKey(tc.file)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("key %x, want %x", got, tc.want)
			}
		})
	}
}
