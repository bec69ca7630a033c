package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func TestStateKeys(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "k.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.State(ctx, "digest"); ok || err != nil {
		t.Fatalf("empty store has state: %v %v", ok, err)
	}
	// A state key commits with the message it accounts for.
	if _, err := s.Commit(ctx, Change{State: []StateEntry{{Key: "digest", Value: []byte(`"x"`)}}, Outbox: []Message{{Kind: "text", Payload: []byte(`{}`)}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutState(ctx, StateEntry{Key: "", Value: []byte("1")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty key: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, ok, err := s.State(ctx, "digest"); !ok || err != nil || string(v) != `"x"` {
		t.Fatalf("after reopen: %q %v %v", v, ok, err)
	}
	if err := s.PutState(ctx, StateEntry{Key: "digest"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.State(ctx, "digest"); ok {
		t.Error("deleted key still there")
	}
}
