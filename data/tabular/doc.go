// Package tabular reads tables of mixed columns (numbers, categories, identifiers) from CSV
// against a declared schema, anonymizes them, measures how well the result hides
// individuals, and encodes rows into model inputs.
//
// The order of the steps is the point: anonymizing transforms run on the table, before any
// row becomes a feature vector, so a model never sees what the release would not show, and
// the privacy report describes exactly the data the model trains on.
//
//	t, err := tabular.ReadFile(path, schema)             // strict: errors name line and column
//	err = cfg.Validate()                                  // the job's anonymization section
//	key, err := cfg.Key()                                 // when cfg.NeedsKey()
//	anon, report, err := tabular.Anonymize(t, cfg, key)   // transforms, row suppression, k and l
//	train, test, enc, err := tabular.EncodeSplit(anon, 0.2, seed)
//	err = train.Gather(idx, x, labels)                    // x: len(idx)*enc.Dim() float32s
//
// # Invariants
//
//   - Read accepts only what the schema declares: the field count of every line, the header
//     names, numbers that parse and are finite, labels among the declared classes. Missing
//     values are explicit: an empty numeric cell takes the column's declared fill (recorded in
//     Series.FillValue), an empty categorical cell becomes MissingValue. Read never panics.
//   - Apply and Anonymize never modify their input table.
//   - A value a hierarchy has no parent for is an error, not passed through, so a value no
//     one planned for is never released as it was.
//   - The encoder's statistics and vocabularies come from the rows it is fitted on only;
//     unseen categories encode as zeros.
//   - Matrix.Gather has the contract of data.Dataset.Gather: it checks the buffer lengths and
//     every index before writing, writes only x and labels, and allocates nothing.
//
// # Concurrency
//
// Tables, encoders and matrices are read-only once built; any number of goroutines may read,
// encode or gather from them at once. Nothing here starts goroutines. FindTitanic may run the
// go command.
//
// # Errors
//
// File content errors wrap ErrMalformed (a *CellError names the line and column), schema
// errors ErrInvalidSchema, anonymization config errors ErrInvalidConfig, and encoding a table
// that differs from the fitted one ErrSchemaMismatch.
package tabular
