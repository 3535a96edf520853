//go:build tools

// Package versitygw pins the S3-compatible server that the checkpoint store tests run against.
// It lives in its own module so the server's dependencies stay out of the project's go.mod.
// Build it with: go build -o DIR/versitygw github.com/versity/versitygw/cmd/versitygw
package versitygw

import _ "github.com/versity/versitygw/cmd/versitygw"
