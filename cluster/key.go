package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeyEnv is the environment variable that holds the cluster key in base64
// when no key file is given.
const KeyEnv = "TROUPE_CLUSTER_KEY"

// Errors about the cluster key.
var (
	// ErrNoKey means neither a key file nor KeyEnv was given.
	ErrNoKey = errors.New("cluster: no cluster key (set a key file or " + KeyEnv + ")")
	// ErrKeyLength means the key is not 16, 24 or 32 bytes long.
	ErrKeyLength = errors.New("cluster: cluster key must be 16, 24 or 32 bytes")
	// ErrKeyEncoding means the key text is not standard base64.
	ErrKeyEncoding = errors.New("cluster: cluster key is not valid base64")
	// ErrKeyRequired means Start was asked to listen on a non-loopback address
	// without a key and without Insecure.
	ErrKeyRequired = errors.New("cluster: a cluster key is required to listen on a non-loopback address")
)

// GenerateKey returns a fresh random 32-byte cluster key (AES-256).
func GenerateKey() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("cluster: generating key: %w", err)
	}
	return key, nil
}

// EncodeKey returns key in the text form LoadKey reads: standard base64.
func EncodeKey(key []byte) string {
	return base64.StdEncoding.EncodeToString(key)
}

// LoadKey reads the cluster key: from file when file is not empty, otherwise
// from the environment variable KeyEnv; a flag names a deliberate choice, so
// it beats the environment. Both hold the key in standard base64, surrounding
// white space ignored. It returns ErrNoKey when neither is given (an empty
// variable counts as unset), and an error wrapping ErrKeyEncoding,
// ErrKeyLength or the file system's error otherwise, each naming the source.
func LoadKey(file string) ([]byte, error) {
	var text, source string
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("cluster: reading key file: %w", err)
		}
		text, source = string(b), "key file "+file
	case os.Getenv(KeyEnv) != "":
		text, source = os.Getenv(KeyEnv), KeyEnv
	default:
		return nil, ErrNoKey
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeyEncoding, source, err)
	}
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, source)
	}
	return key, nil
}

// checkKey accepts the AES key sizes memberlist's keyring accepts.
func checkKey(key []byte) error {
	switch len(key) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%w, got %d", ErrKeyLength, len(key))
}
