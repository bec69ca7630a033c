package kongsim

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kongbot/kongbot/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	// On a full run, every Admin API exchange and CLI transcript of the
	// fixtures must have been replayed by one of the stories.
	if code == 0 && flag.Lookup("test.run").Value.String() == "" {
		if missing := unreplayedFixtures(); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "fixtures never replayed (%d):\n  %s\n", len(missing), strings.Join(missing, "\n  "))
			code = 1
		}
	}
	os.Exit(code)
}

var replayed sync.Map // fixture path relative to the fixtures root -> true

func unreplayedFixtures() []string {
	root := fixturesRoot
	if d := os.Getenv("KONG_FIXTURES"); d != "" {
		root = d
	}
	if _, err := os.Stat(root); err != nil {
		return nil
	}
	var missing []string
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		parts := strings.Split(rel, string(filepath.Separator))
		wanted := false
		switch {
		case strings.HasPrefix(rel, "conversion/"):
			base := filepath.Base(rel)
			wanted = base == "api.json" || contains(parts, "setup") || contains(parts, "convert") ||
				(contains(parts, "99-precedence") && strings.Contains(base, "-admin-"))
		case len(parts) == 4 && (parts[2] == "admin" || parts[2] == "cli"):
			wanted = true
		}
		if _, ok := replayed.Load(rel); wanted && !ok {
			missing = append(missing, rel)
		}
		return nil
	})
	sort.Strings(missing)
	return missing
}
