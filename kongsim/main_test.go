package kongsim

import (
	"os"
	"testing"

	"github.com/kongbot/kongbot/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
