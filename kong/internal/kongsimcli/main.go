// Command kongsimcli is `kongsim migrations` for package kong's tests, used
// only while cmd/kongsim does not exist yet: it forwards to
// kongsim.RunMigrationsCLI, the code cmd/kongsim runs.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/kongbot/kongbot/kongsim"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "migrations" {
		fmt.Fprintln(os.Stderr, "usage: kongsimcli migrations COMMAND --version V --pg DSN")
		os.Exit(1)
	}
	os.Exit(kongsim.RunMigrationsCLI(context.Background(), os.Args[2:], os.Stdout, os.Stderr))
}
