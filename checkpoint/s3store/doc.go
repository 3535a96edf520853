// Package s3store keeps checkpoints in S3 or an S3-compatible object store, behind the same
// checkpoint.Store interface as a local directory, so that a run's checkpoints outlive the
// machine it ran on.
//
// A store is named by a URI such as
//
//	s3://bucket/runs/mnist?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true
//
// and each checkpoint name becomes the object key "runs/mnist/<name>". Credentials never
// appear in a URI: they come from Config or from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
//
// What S3 guarantees, and what the store adds:
//
//   - Put is one PutObject, which S3 applies atomically: readers see the old or the new
//     object, never part of one. There are no temporary objects, so none are left behind.
//     One PutObject takes at most 5 GiB on AWS.
//   - Get of a missing object wraps checkpoint.ErrNotFound; a missing bucket or refused
//     credentials do not, so that the Manager never takes a misconfiguration for a torn
//     checkpoint.
//   - List pages through ListObjectsV2 and shows only keys that are valid names, sorted.
//   - Transient failures are retried as far as the AWS SDK's standard retryer goes (three
//     attempts); each call is bounded by Config.Timeout.
//
// Some S3-compatible servers keep objects as files: there a name cannot be both an object and
// the folder of others ("a" and "a/b"). Checkpoint names never are.
package s3store
