package cluster

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"
)

// TLSServerName is the DNS name every node certificate carries and every
// client verifies. Nodes are peers: what a client must know is that the
// server belongs to the cluster, not which host it is, and a fixed name lets
// the standard verification say exactly that.
const TLSServerName = "troupe-cluster"

// HKDF labels. Changing one changes the CA every node derives, which splits
// clusters by version: do it only with a protocol version bump.
const (
	caKeyInfo    = "troupe cluster CA ed25519 key v1"
	caSerialInfo = "troupe cluster CA serial v1"
)

// The CA certificate must be byte-identical on every node, so its validity
// is fixed rather than taken from the clock. 9999-12-31 is RFC 5280's "no
// well-defined expiration".
var (
	caNotBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	caNotAfter  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// leafLifetime bounds how long a node certificate is valid: longer than any
// job should run. There is no revocation; rotating the cluster key retires
// every certificate at once.
const leafLifetime = 365 * 24 * time.Hour

// clusterCA derives the cluster's certificate authority from the cluster
// key. Every node with the same key derives the same key pair and the same
// certificate; a node with another key derives another CA.
func clusterCA(key []byte) (*x509.Certificate, ed25519.PrivateKey, error) {
	if err := checkKey(key); err != nil {
		return nil, nil, err
	}
	seed, err := hkdf.Key(sha256.New, key, nil, caKeyInfo, ed25519.SeedSize)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: deriving CA key: %w", err)
	}
	serial, err := hkdf.Key(sha256.New, key, nil, caSerialInfo, 16)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: deriving CA serial: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial),
		Subject:               pkix.Name{CommonName: "troupe cluster CA"},
		NotBefore:             caNotBefore,
		NotAfter:              caNotAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	// Ed25519 signatures are deterministic, so the reader is never used for
	// them; it is passed only because the API asks for one.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: parsing CA certificate: %w", err)
	}
	return cert, priv, nil
}

// TLSConfigs returns the TLS configurations for this node's remote traffic:
// server for its listener, client for its dials. Both present a fresh
// certificate for nodeName signed by the CA derived from key, trust only
// that CA, require TLS 1.3, and the server requires and verifies a client
// certificate; so a connection succeeds exactly when both ends hold the same
// cluster key. The client verifies the server against TLSServerName. It
// fails with ErrKeyLength for a key of the wrong size.
func TLSConfigs(key []byte, nodeName string) (server, client *tls.Config, err error) {
	ca, caKey, err := clusterCA(key)
	if err != nil {
		return nil, nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: generating node key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: generating serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: nodeName},
		DNSNames:     []string{TLSServerName},
		NotBefore:    now.Add(-time.Hour), // tolerate clocks an hour apart
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: signing node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: parsing node certificate: %w", err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   TLSServerName,
	}
	return server, client, nil
}
