package shiptest

import (
	"debug/elf"
	"errors"
	"fmt"
)

// ErrNotStatic reports a binary that needs a dynamic loader or shared
// libraries, so it cannot run on a distroless/static or scratch image.
var ErrNotStatic = errors.New("not a static binary")

// CheckStaticELF returns nil when path is an ELF executable that runs without
// a dynamic loader: no PT_INTERP program header, no DT_NEEDED libraries and
// no dynamic symbol imports. A distroless/static image has no libc and no
// ld.so, so any of them would make the container fail at exec time with a
// misleading "no such file or directory".
func CheckStaticELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("reading %s as ELF: %w", path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s: ELF type %v is not an executable", path, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s has a PT_INTERP program header (needs a dynamic loader): %w", path, ErrNotStatic)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return fmt.Errorf("reading DT_NEEDED of %s: %w", path, err)
	}
	if len(libs) > 0 {
		return fmt.Errorf("%s needs shared libraries %v: %w", path, libs, ErrNotStatic)
	}
	syms, err := f.ImportedSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return fmt.Errorf("reading imported symbols of %s: %w", path, err)
	}
	if len(syms) > 0 {
		return fmt.Errorf("%s imports %d dynamic symbols (first %s): %w", path, len(syms), syms[0].Name, ErrNotStatic)
	}
	return nil
}
