package cluster

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestClusterCAIsDerivedFromTheKey(t *testing.T) {
	a, _, err := clusterCA(testKey)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := clusterCA(testKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Raw, b.Raw) {
		t.Fatal("the same key derived two different CA certificates")
	}
	c, _, err := clusterCA(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if a.PublicKey.(ed25519.PublicKey).Equal(c.PublicKey) {
		t.Fatal("two keys derived the same CA key")
	}
	if _, _, err := TLSConfigs(testKey[:7], "n"); !errors.Is(err, ErrKeyLength) {
		t.Fatalf("TLSConfigs with a 7-byte key: %v, want ErrKeyLength", err)
	}
}

// handshake runs one TLS connection over loopback, server on one side and
// client on the other, and has the client send a line that the server echoes.
// It returns each side's error.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(5 * time.Second)
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(deadline)
		tc := tls.Server(conn, server)
		if err := tc.Handshake(); err != nil {
			done <- err
			return
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(tc, buf); err != nil {
			done <- err
			return
		}
		_, err = tc.Write(buf)
		done <- err
	}()
	clientErr = func() error {
		conn, err := tls.DialWithDialer(&net.Dialer{Deadline: deadline}, "tcp", ln.Addr().String(), client)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(deadline)
		if _, err := conn.Write([]byte("hello")); err != nil {
			return err
		}
		// In TLS 1.3 the server judges the client's certificate after the
		// client's handshake ends, so a rejection shows up on this read.
		buf := make([]byte, 5)
		if _, err := io.ReadFull(conn, buf); err != nil {
			return err
		}
		if string(buf) != "hello" {
			return errors.New("echo mismatch: " + string(buf))
		}
		return nil
	}()
	return <-done, clientErr
}

func TestTLSMutualAuthentication(t *testing.T) {
	mustConfigs := func(key []byte, name string) (*tls.Config, *tls.Config) {
		s, c, err := TLSConfigs(key, name)
		if err != nil {
			t.Fatal(err)
		}
		return s, c
	}
	server, _ := mustConfigs(testKey, "server")
	_, client := mustConfigs(testKey, "client")
	_, foreignClient := mustConfigs(otherKey, "foreign client")
	foreignServer, _ := mustConfigs(otherKey, "foreign server")
	// No key: a client with no certificate that trusts anything, and a server
	// whose certificate the cluster never signed.
	anonymousClient := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	selfSignedServer, _ := mustConfigs(bytes.Repeat([]byte{9}, 16), "self-signed")
	selfSignedServer.ClientAuth = tls.NoClientCert

	cases := []struct {
		name           string
		server, client *tls.Config
		ok             bool
	}{
		{"same key", server, client, true},
		{"client with another key", server, foreignClient, false},
		{"server with another key", foreignServer, client, false},
		{"client without key", server, anonymousClient, false},
		{"server without cluster certificate", selfSignedServer, client, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			serverErr, clientErr := handshake(t, tc.server, tc.client)
			if tc.ok {
				if serverErr != nil || clientErr != nil {
					t.Fatalf("server: %v; client: %v; want both to succeed", serverErr, clientErr)
				}
				return
			}
			if serverErr == nil || clientErr == nil {
				t.Fatalf("server: %v; client: %v; want both to fail", serverErr, clientErr)
			}
		})
	}
}

func TestTLSConfigsRequireTLS13(t *testing.T) {
	server, client, err := TLSConfigs(testKey, "n")
	if err != nil {
		t.Fatal(err)
	}
	if server.MinVersion != tls.VersionTLS13 || client.MinVersion != tls.VersionTLS13 {
		t.Fatalf("MinVersion %x/%x, want TLS 1.3", server.MinVersion, client.MinVersion)
	}
	if server.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("ClientAuth %v, want RequireAndVerifyClientCert", server.ClientAuth)
	}
	old := &tls.Config{MaxVersion: tls.VersionTLS12, Certificates: client.Certificates, RootCAs: client.RootCAs, ServerName: TLSServerName}
	serverErr, clientErr := handshake(t, server, old)
	if serverErr == nil || clientErr == nil {
		t.Fatalf("TLS 1.2 client: server %v, client %v; want both to fail", serverErr, clientErr)
	}
}
