package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// truncatedArchive writes the first half of a gzip tar.
func truncatedArchive(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	data := bytes.Repeat([]byte("a row\tof data\n"), 5000)
	tw.WriteHeader(&tar.Header{Name: "data/apis.copy", Mode: 0o600, Size: int64(len(data))})
	tw.Write(data)
	tw.Close()
	gz.Close()
	path := filepath.Join(t.TempDir(), "cut.tar.gz")
	if err := os.WriteFile(path, buf.Bytes()[:buf.Len()/2], 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDatastoreRestoreCommandLine(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.tar.gz")
	cut := truncatedArchive(t)
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
		{"missing archive, flag after it", []string{"restore", missing, "--dsn", "postgres://x:pw@127.0.0.1:1/k"}, 1, "does not exist"},
		// The archive is checked before the database is connected to: the
		// unreachable DSN is never reached.
		{"truncated archive", []string{"restore", cut, "--dsn", "postgres://x:pw@127.0.0.1:1/k"}, 1,
			"snapshot archive " + cut + " is truncated: it ends inside data/apis.copy"},
		{"verify without an archive", []string{"verify"}, 2, "usage"},
		{"verify takes no dsn", []string{"verify", cut, "--dsn", "postgres://x@127.0.0.1:1/k"}, 2, "flag provided but not defined: -dsn"},
		{"verify a truncated archive", []string{"verify", cut}, 1, "kongbot datastore verify: snapshot archive " + cut + " is truncated"},
		{"verify a missing archive", []string{"verify", missing}, 1, "does not exist"},
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
