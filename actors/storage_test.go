package actors

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreLocations(t *testing.T) {
	for _, tc := range []struct {
		uri, dir string
		local    bool
	}{
		{"ckpt", "ckpt", true},
		{"/abs/ckpt", "/abs/ckpt", true},
		{"file:///abs/ckpt", "/abs/ckpt", true},
		{"file:///with%20space", "/with space", true},
		{"FILE:///abs", "/abs", true},
		{"file://localhost/abs", "/abs", true},
		{"./odd://name", "./odd://name", true},
		{"s3://bucket/prefix", "", false},
	} {
		dir, local, err := LocalDir(tc.uri)
		if err != nil || dir != tc.dir || local != tc.local {
			t.Errorf("%q: %q, local %v, %v; want %q, local %v", tc.uri, dir, local, err, tc.dir, tc.local)
		}
	}
	for _, bad := range []string{"", "file://", "file://rel/ckpt", "file://host/abs"} {
		if _, _, err := LocalDir(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	ctx := context.Background()
	if _, err := OpenStore(ctx, "gs://bucket"); err == nil || !strings.Contains(err.Error(), `unsupported scheme "gs"`) {
		t.Errorf("gs://: %v", err)
	}
	if _, err := OpenStore(ctx, "s3://"); err == nil {
		t.Error("s3:// without a bucket: no error")
	}
	dir := filepath.Join(t.TempDir(), "made")
	if _, err := OpenStore(ctx, "file://"+dir); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Errorf("file:// store did not make its directory: %v", err)
	}
}
