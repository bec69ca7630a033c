package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/kongbot/kongbot/store"
)

// ErrUnreachable means nothing answered at the admin address (the bot is
// not running there).
var ErrUnreachable = errors.New("admin endpoint unreachable")

// Client talks to a running bot's admin endpoint.
type Client struct {
	// Addr is host:port, e.g. 127.0.0.1:8089.
	Addr string
	HTTP *http.Client
}

// NewClient returns a client with a short timeout: the endpoint is local.
func NewClient(addr string) *Client {
	return &Client{Addr: addr, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, c.Addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading admin reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			if resp.StatusCode == http.StatusNotFound {
				return fmt.Errorf("%s: %w", e.Error, store.ErrNotFound)
			}
			return errors.New(e.Error)
		}
		return fmt.Errorf("admin endpoint at %s answered %s (is it kongbot?)", c.Addr, resp.Status)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding admin reply (is %s kongbot?): %w", c.Addr, err)
	}
	return nil
}

// Runs lists runs.
func (c *Client) Runs(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	q := url.Values{}
	if f.Gateway != "" {
		q.Set("gateway", f.Gateway)
	}
	if f.ActiveOnly {
		q.Set("active", "1")
	}
	var out []store.Run
	path := "/admin/runs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// Run reads one run.
func (c *Client) Run(ctx context.Context, id string) (store.Run, error) {
	var out store.Run
	return out, c.do(ctx, http.MethodGet, "/admin/runs/"+url.PathEscape(id), nil, &out)
}

// Audit reads a run's audit entries, verified when verify is set.
func (c *Client) Audit(ctx context.Context, id string, verify bool) (AuditReport, error) {
	var out AuditReport
	path := "/admin/runs/" + url.PathEscape(id) + "/audit"
	if verify {
		path += "?verify=1"
	}
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// Backup asks the bot to write a backup to path (absolute, on the bot's host).
func (c *Client) Backup(ctx context.Context, path string) (store.BackupInfo, error) {
	var out store.BackupInfo
	return out, c.do(ctx, http.MethodPost, "/admin/backup", BackupRequest{Path: path}, &out)
}
