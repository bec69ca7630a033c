// Command kongbot is the Kong upgrade bot and its tools: each subcommand is
// one entry of the dispatch table below.
package main

import (
	"fmt"
	"os"
	"sort"
)

// subcommands maps a subcommand name to its entry point; each returns the
// process exit code.
var subcommands = map[string]func(args []string) int{
	"plan": planMain,
	"demo": demoMain,

	"datastore": datastoreMain,

	"config": configMain,
	"runs":   runsMain,
	"store":  storeMain,
	"serve":  serveMain,
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage()
		return 2
	}
	sub, ok := subcommands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "kongbot: unknown subcommand %q\n", args[0])
		usage()
		return 2
	}
	return sub(args[1:])
}

func usage() {
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: kongbot <subcommand> [flags]")
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  kongbot %s\n", n)
	}
}
