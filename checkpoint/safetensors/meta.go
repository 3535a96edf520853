package safetensors

// Metadata keys of the files troupe exports. "format": "pt" is what PyTorch-side tools look
// for; the troupe.* keys let a reader rebuild the model and its input normalization.
const (
	MetaFormat      = "format"
	MetaJob         = "troupe.job"
	MetaStep        = "troupe.step"
	MetaCheckpoint  = "troupe.checkpoint"
	MetaFinished    = "troupe.finished" // "true" when the checkpoint is the end of a finished run
	MetaFingerprint = "troupe.fingerprint"
	MetaModel       = "troupe.model" // JSON of the model spec with its defaults filled in
	MetaDataset     = "troupe.data.dataset"
	MetaDataMean    = "troupe.data.mean" // inputs are (pixel/255 - mean) / std, or pixel/255 when std is 0
	MetaDataStd     = "troupe.data.std"
)
