// Command troupe trains neural networks with troupe's actors: `troupe train` runs a whole job
// in this process.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal asks for a clean stop at the next step boundary; from then on the
		// default handling is back, so a second Ctrl-C ends the process at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program but for the process: arguments in, exit code out.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "troupe",
		Short:         "troupe: elastic data-parallel training with actors",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newTrainCommand(stdout, stderr))
	root.AddCommand(newNodeCommand(stdout, stderr))
	root.AddCommand(newStatusCommand(stdout, stderr))
	root.AddCommand(newExportCommand(stdout, stderr))
	root.AddCommand(newImportCommand(stdout, stderr))
	root.AddCommand(newGenerateCommand(stdout, stderr))
	root.AddCommand(newPlotCommand(stdout, stderr))
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(stderr, "troupe:", err)
		return 130
	default:
		fmt.Fprintln(stderr, "troupe:", err)
		return 1
	}
}
