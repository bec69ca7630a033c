package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestDatastoreRestoreCommandLine(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.tar.gz")
	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"no verb", nil, 2, "usage: kongbot datastore restore"},
		{"unknown verb", []string{"dump"}, 2, "usage"},
		{"no archive", []string{"restore", "--dsn", "postgres://x@127.0.0.1:1/k"}, 2, "usage"},
		{"no dsn", []string{"restore", missing}, 2, "usage"},
		{"two archives", []string{"restore", "a", "b", "--dsn", "postgres://x@127.0.0.1:1/k"}, 2, "usage"},
		{"missing archive, flag after it", []string{"restore", missing, "--dsn", "postgres://x:pw@127.0.0.1:1/k"}, 1, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KONGBOT_RESTORE_DSN", "")
			var out, errb bytes.Buffer
			code := runDatastore(context.Background(), tc.args, &out, &errb)
			if code != tc.code || !strings.Contains(errb.String(), tc.wantErr) {
				t.Fatalf("code %d, stderr %q; want %d and %q", code, errb.String(), tc.code, tc.wantErr)
			}
		})
	}
}
