package tabular

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/troupe-ml/troupe/data"
)

// The Titanic passenger table. The copy troupe can always reach ships in a Go module, found
// like MNIST through the module cache or `go mod download`. That copy is a coded extract of the
// passenger list: no header, 889 rows (the two passengers without a port of embarkation left
// out) and four columns, Pclass, Sex (0 female, 1 male), Embarked (0 Cherbourg, 1 Queenstown,
// 2 Southampton) and Survived. The full list (891 rows, 12 columns with names, ages, tickets
// and cabins) reads with TitanicSchema when a copy is at hand: pass its path or set TitanicEnv.
const (
	TitanicModule        = "github.com/sjwhitworth/golearn"
	TitanicModuleVersion = "v0.0.0-20221228163002-74ae077eafb2"
	// TitanicModuleFile is the extract's path inside the module.
	TitanicModuleFile = "examples/datasets/titanic.csv"
	// TitanicModuleSHA256 is the extract's sha256, so that a changed file is noticed.
	TitanicModuleSHA256 = "acee2e4ca84f4db8282a61d7ed02a4eba39e09aafefb640e86bf2e3bfa798222"
	// TitanicModuleRows is the number of rows of the extract.
	TitanicModuleRows = 889
	// TitanicEnv names the environment variable that points FindTitanic at a CSV file.
	TitanicEnv = "TROUPE_TITANIC_CSV"
)

// titanicHeader starts the full passenger list; ReadTitanic tells the layouts apart by it.
const titanicHeader = "PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked"

// TitanicSchema declares the full passenger list. The quasi-identifiers are what an outsider
// could know about a passenger (age, sex, class, port, family aboard); survival is the label
// and the sensitive attribute. Name, ticket and passenger id are kept as text so that the
// anonymization, not the reader, decides their fate.
func TitanicSchema() Schema {
	return Schema{Name: "titanic", Header: true, Columns: []Column{
		{Name: "PassengerId", Kind: Text, Role: Kept},
		{Name: "Survived", Kind: Categorical, Role: Label, Classes: []string{"0", "1"}},
		{Name: "Pclass", Kind: Categorical, Role: QuasiIdentifier},
		{Name: "Name", Kind: Text, Role: Kept},
		{Name: "Sex", Kind: Categorical, Role: QuasiIdentifier},
		{Name: "Age", Kind: Numeric, Role: QuasiIdentifier, Fill: FillMedian},
		{Name: "SibSp", Kind: Numeric, Role: QuasiIdentifier},
		{Name: "Parch", Kind: Numeric, Role: QuasiIdentifier},
		{Name: "Ticket", Kind: Text, Role: Kept},
		{Name: "Fare", Kind: Numeric, Role: Feature, Fill: FillMedian},
		{Name: "Cabin", Kind: Categorical, Role: Feature},
		{Name: "Embarked", Kind: Categorical, Role: QuasiIdentifier},
	}}
}

func ptr(v float64) *float64 { return &v }

// TitanicAnonymization is a sensible release of the full list: names and passenger ids go,
// tickets become keyed pseudonyms (shared tickets still show who travelled together), ages
// become four ranges (unknown ages their own "?" range), family counts are top-coded at 1
// (alone or not), cabins become deck groups, the ports merge into Southampton against the
// rest (the missing port, seen twice, is suppressed), and the rows still in classes below
// k = 5 are removed. On the 891-row list this keeps 704 rows.
func TitanicAnonymization() Config {
	return Config{
		K:            5,
		SuppressRows: true,
		Transforms: []Transform{
			{Column: "Name", Op: OpDrop},
			{Column: "PassengerId", Op: OpDrop},
			{Column: "Ticket", Op: OpPseudonymize, HexChars: 12},
			{Column: "Age", Op: OpBins, Edges: []float64{18, 40, 60}, Labels: []string{"0-17", "18-39", "40-59", "60+"}},
			{Column: "SibSp", Op: OpClamp, Max: ptr(1)},
			{Column: "Parch", Op: OpClamp, Max: ptr(1)},
			{Column: "Cabin", Op: OpPrefix, Chars: 1},
			// Decks A to C were the upper decks (T, one cabin on the boat deck, joins them),
			// D and E the middle and F and G the lower ones.
			{Column: "Cabin", Op: OpHierarchy, Levels: 1, Parents: []map[string]string{
				{"A": "A-C", "B": "A-C", "C": "A-C", "T": "A-C", "D": "D-E", "E": "D-E", "F": "F-G", "G": "F-G"},
				{"A-C": SuppressedValue, "D-E": SuppressedValue, "F-G": SuppressedValue},
			}},
			{Column: "Embarked", Op: OpHierarchy, Parents: []map[string]string{{"C": "C|Q", "Q": "C|Q", "S": "S"}}},
			{Column: "Embarked", Op: OpSuppressRare, MinCount: 10},
		},
	}
}

// TitanicCodedSchema declares the coded extract in TitanicModule.
func TitanicCodedSchema() Schema {
	return Schema{Name: "titanic-coded", Header: false, Columns: []Column{
		{Name: "Pclass", Kind: Categorical, Role: QuasiIdentifier},
		{Name: "Sex", Kind: Categorical, Role: QuasiIdentifier},
		{Name: "Embarked", Kind: Categorical, Role: QuasiIdentifier},
		{Name: "Survived", Kind: Categorical, Role: Label, Classes: []string{"0", "1"}},
	}}
}

// TitanicCodedAnonymization generalizes the extract's only finely split quasi-identifier, the
// port: Cherbourg and Queenstown (few passengers each) merge, Southampton stays, and the rows
// still in classes below k = 10 are removed.
func TitanicCodedAnonymization() Config {
	return Config{
		K:            10,
		SuppressRows: true,
		Transforms: []Transform{
			{Column: "Embarked", Op: OpHierarchy, Parents: []map[string]string{{"0": "C|Q", "1": "C|Q", "2": "S"}}},
		},
	}
}

// FindTitanic returns the path of a Titanic CSV file: override when not empty, else the file
// named by TitanicEnv, else the coded extract in TitanicModule (module cache first, then
// `go mod download`).
func FindTitanic(override string) (string, error) {
	if override != "" {
		return override, nil
	}
	if env := os.Getenv(TitanicEnv); env != "" {
		return env, nil
	}
	root, err := data.ModuleDir(TitanicModule + "@" + TitanicModuleVersion)
	if err != nil {
		return "", fmt.Errorf("tabular: Titanic data set not found (set %s to a CSV file): %w", TitanicEnv, err)
	}
	return filepath.Join(root, filepath.FromSlash(TitanicModuleFile)), nil
}

// ReadTitanic reads a Titanic CSV file in either layout and returns it with the
// anonymization that fits the layout. A file without the full list's header must be the
// module's coded extract, byte for byte: its sha256 is checked.
func ReadTitanic(path string) (*Table, Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, Config{}, fmt.Errorf("tabular: %w", err)
	}
	schema, anon := TitanicSchema(), TitanicAnonymization()
	if !bytes.HasPrefix(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), []byte(titanicHeader)) {
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != TitanicModuleSHA256 {
			return nil, Config{}, fmt.Errorf("%w: %s: neither the full passenger list (header %s) nor the coded extract of %s (sha256 %s, want %s)",
				ErrMalformed, path, titanicHeader, TitanicModule, got, TitanicModuleSHA256)
		}
		schema, anon = TitanicCodedSchema(), TitanicCodedAnonymization()
	}
	t, err := Read(bytes.NewReader(b), schema)
	if err != nil {
		return nil, Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, anon, nil
}
