// Package s3test runs a real S3-compatible server (versitygw, pinned in tools/versitygw) on
// 127.0.0.1 for tests, so that object storage code is tested against S3's own behaviour
// rather than a mock's idea of it.
//
// The server binary is $TROUPE_VERSITYGW, or else one built once from the tools module into
// the user's cache directory. A test that cannot have it is skipped, unless
// $TROUPE_REQUIRE_S3 is set, when it fails.
package s3test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Environment variables that steer Start.
const (
	EnvBinary  = "TROUPE_VERSITYGW"  // path of a versitygw binary to use
	EnvRequire = "TROUPE_REQUIRE_S3" // when set, a missing server fails tests instead of skipping them
)

const (
	toolsDir    = "tools/versitygw"
	toolsModule = "github.com/versity/versitygw"
	startWait   = 20 * time.Second
	stopWait    = 5 * time.Second
)

// Server is a running versitygw with one root account.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string

	tb     testing.TB
	client *s3.Client
}

// Start runs a server on a free 127.0.0.1 port, with its data in a temporary directory,
// and stops it when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := binary(tb)
	if err != nil {
		if os.Getenv(EnvRequire) != "" {
			tb.Fatalf("S3 test server unavailable and %s is set: %v", EnvRequire, err)
		}
		tb.Skipf("S3 test server unavailable (set %s to a versitygw binary): %v", EnvBinary, err)
	}
	s := &Server{AccessKey: randomHex(10), SecretKey: randomHex(20), tb: tb}
	// The port is free when picked but may be taken before the server binds it: try again.
	for attempt := 1; ; attempt++ {
		err = s.start(bin)
		if err == nil {
			break
		}
		if attempt == 3 {
			tb.Fatalf("starting versitygw: %v", err)
		}
	}
	s.client = s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
	return s
}

// Bucket creates a bucket and returns its URI for s3store.ParseURI. Credentials are not part
// of it: use AccessKey and SecretKey.
func (s *Server) Bucket(name string) string {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startWait)
	defer cancel()
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name}); err != nil {
		s.tb.Fatalf("creating bucket %q: %v", name, err)
	}
	return "s3://" + name + "?endpoint=" + s.Endpoint + "&path_style=true"
}

// Client returns an S3 client with the root account's keys, to reach behind a store's back.
func (s *Server) Client() *s3.Client { return s.client }

func (s *Server) start(bin string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dir := s.tb.TempDir()
	logPath := filepath.Join(dir, "versitygw.log")
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--quiet", "--port", addr, "posix", data)
	// Only what the server needs: its many VGW_* variables must not leak in from the caller.
	cmd.Env = []string{
		"ROOT_ACCESS_KEY=" + s.AccessKey,
		"ROOT_SECRET_KEY=" + s.SecretKey,
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	logTail := func() string {
		b, _ := os.ReadFile(logPath)
		return tail(string(b), 2000)
	}
	s.Endpoint = "http://" + addr
	if err := waitUp(s.Endpoint, exited); err != nil {
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%v; server output:\n%s", err, logTail())
	}
	s.tb.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(stopWait):
			cmd.Process.Kill()
			<-exited
			s.tb.Logf("versitygw did not stop within %v; killed it. Output:\n%s", stopWait, logTail())
		}
	})
	return nil
}

// waitUp returns once the server answers HTTP, whatever it answers.
func waitUp(endpoint string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startWait)
	for {
		resp, err := client.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("versitygw exited before answering")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw did not answer at %s within %v: %v", endpoint, startWait, err)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// built remembers, per test process, the outcome of finding or building the binary, so that
// a failed build is not tried again by every test.
var built struct {
	sync.Mutex
	done bool
	path string
	err  error
}

// binary returns the server's path, building it into the cache on first use.
func binary(tb testing.TB) (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	built.Lock()
	defer built.Unlock()
	if !built.done {
		built.path, built.err = build(tb)
		built.done = true
	}
	return built.path, built.err
}

// build returns the cached binary of the pinned version, building it first if needed.
func build(tb testing.TB) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	mod := filepath.Join(root, filepath.FromSlash(toolsDir))
	version, err := pinnedVersion(filepath.Join(mod, "go.mod"))
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory to build versitygw into: %w", err)
	}
	dir := filepath.Join(cache, "troupe", "versitygw-"+version)
	exe := filepath.Join(dir, "versitygw")
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	if executable(exe) == nil {
		return exe, nil
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("versitygw is not built and no go command is on PATH to build it: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Build beside the target and rename, so that test processes building at the same time
	// never run a half-written binary.
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	tb.Logf("building versitygw %s into %s (once; takes minutes)", version, dir)
	start := time.Now()
	cmd := exec.Command(goTool, "build", "-o", filepath.Join(tmp, filepath.Base(exe)), toolsModule+"/cmd/versitygw")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building versitygw in %s: %v\n%s", mod, err, tail(string(out), 4000))
	}
	if err := os.Rename(filepath.Join(tmp, filepath.Base(exe)), exe); err != nil {
		return "", err
	}
	tb.Logf("built versitygw in %v", time.Since(start).Round(time.Second))
	return exe, nil
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || runtime.GOOS != "windows" && fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// repoRoot walks up from the working directory, which go test sets to the package's, to the
// directory holding the tools module.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, filepath.FromSlash(toolsDir), "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no %s/go.mod above %s", toolsDir, dir)
		}
	}
}

// pinnedVersion reads the version of versitygw that the tools module requires, so that the
// cache directory changes when the pin does.
func pinnedVersion(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(f) >= 2 && f[0] == toolsModule && strings.HasPrefix(f[1], "v") && !strings.ContainsAny(f[1], `/\`) {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("%s does not require %s", gomod, toolsModule)
}
