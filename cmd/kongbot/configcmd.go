package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kongbot/kongbot/config"
)

// configMain is `kongbot config check FILE`: decode the file strictly and
// list every problem with its field path, including environment variables
// that are named but not set. Exit 0 when clean, 1 with problems, 2 on usage.
func configMain(args []string) int {
	return runConfig(args, os.Stdout, os.Stderr)
}

func runConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: kongbot config check FILE")
		return 2
	}
	path := args[1]
	c, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return 1
	}
	if ps := c.Check(); len(ps) > 0 {
		fmt.Fprintf(stdout, "%s: %d problem(s)\n", path, len(ps))
		for _, p := range ps {
			fmt.Fprintf(stdout, "  %s\n", p)
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (gateways: %s; store %s; admin %s)\n", path,
		strings.Join(c.GatewayNames(), ", "), c.Store.Path, c.Admin.Listen)
	return 0
}
