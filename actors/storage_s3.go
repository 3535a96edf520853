package actors

import (
	"context"
	"fmt"

	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/checkpoint/s3store"
)

func openS3(ctx context.Context, uri string) (checkpoint.Store, error) {
	cfg, err := s3store.ParseURI(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadJob, err)
	}
	return s3store.Open(ctx, cfg)
}
