// Command staticcheck exits non-zero unless every argument is a static ELF
// executable; scripts/docker-build-check.sh uses it so the check needs
// neither file(1) nor binutils on the CI machine.
package main

import (
	"fmt"
	"os"

	"github.com/kongbot/kongbot/internal/shiptest"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: staticcheck BINARY...")
		os.Exit(2)
	}
	failed := false
	for _, p := range os.Args[1:] {
		if err := shiptest.CheckStaticELF(p); err != nil {
			fmt.Fprintln(os.Stderr, "staticcheck:", err)
			failed = true
			continue
		}
		fmt.Printf("%s: static ELF executable (no PT_INTERP, no DT_NEEDED)\n", p)
	}
	if failed {
		os.Exit(1)
	}
}
