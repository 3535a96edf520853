package s3test

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel stop the server if the test process dies without cleaning up,
// for example when go test kills it on a timeout.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
