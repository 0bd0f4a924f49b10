package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sqlCall posts body to path's /sql on base and returns the status and the
// answer.
func sqlCall(ctx context.Context, client *http.Client, base, path string, body any) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	ans, err := io.ReadAll(resp.Body)
	return resp.StatusCode, ans, err
}

// sqlRows runs one statement on base and returns its rows, failing the test
// unless it answers 200.
func sqlRows(t *testing.T, base, path, sql string, params ...any) [][]any {
	t.Helper()
	status, ans, err := sqlCall(context.Background(), &http.Client{Timeout: 30 * time.Second}, base, path, map[string]any{"sql": sql, "params": params})
	if err != nil || status != http.StatusOK {
		t.Fatalf("%s %q: %d %s %v", path, sql, status, ans, err)
	}
	var out struct {
		Results []struct {
			Rows [][]any `json:"rows"`
		} `json:"results"`
	}
	if err := json.Unmarshal(ans, &out); err != nil || len(out.Results) != 1 {
		t.Fatalf("%s %q: %s %v", path, sql, ans, err)
	}
	return out.Results[0].Rows
}

// TestKill9SQL inserts rows from many clients, each its own /sql write with
// a unique value, kills the node with SIGKILL while they are in flight,
// restarts it on the same data directory and checks, twice over, that every
// acknowledged row is there, that each database passes
// PRAGMA integrity_check, and that rows present but never acknowledged (a
// write whose answer the kill cut off) break nothing.
func TestKill9SQL(t *testing.T) {
	bin := buildNode(t)
	dir := t.TempDir()
	p := startProc(t, bin, dir)

	const objects = 12
	path := func(o int) string { return fmt.Sprintf("/v1/ns/crashsql/objects/obj-%d/sql", o) }
	for o := range objects {
		sqlRows(t, p.url, path(o), `CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE,
			at TEXT DEFAULT CURRENT_TIMESTAMP, pad BLOB)`)
	}

	acked := map[string]int{}     // value → object, answered 200
	attempted := map[string]int{} // value → object, sent
	for round := range 2 {
		const writers = 16
		var mu sync.Mutex
		roundAcked := 0
		ctx, cancel := context.WithCancel(context.Background())
		client := &http.Client{Timeout: 10 * time.Second}
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					o := (w + i) % objects
					v := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					mu.Lock()
					attempted[v] = o
					mu.Unlock()
					// Rows of different sizes, some past a page, so that
					// commits touch several pages and overflow chains.
					body := map[string]any{"sql": "INSERT INTO t(v, pad) VALUES (?, randomblob(?))", "params": []any{v, (i * 997) % 6000}}
					status, _, err := sqlCall(ctx, client, p.url, path(o), body)
					if err == nil && status == http.StatusOK {
						mu.Lock()
						acked[v] = o
						roundAcked++
						mu.Unlock()
					}
				}
			})
		}
		waitFor(t, 60*time.Second, "acknowledged SQL inserts", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return roundAcked >= 300
		})
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.done
		cancel()
		wg.Wait()
		t.Logf("round %d: %d inserts acknowledged before kill -9 (%d sent in all)", round, roundAcked, len(attempted))

		p = startProc(t, bin, dir)
		present := map[string]bool{}
		for o := range objects {
			if got := sqlRows(t, p.url, path(o), "PRAGMA integrity_check"); len(got) != 1 || got[0][0] != "ok" {
				t.Fatalf("obj-%d after restart: integrity_check %v", o, got)
			}
			for _, row := range sqlRows(t, p.url, path(o), "SELECT v, length(pad) FROM t") {
				v := row[0].(string)
				if want, ok := attempted[v]; !ok || want != o {
					t.Fatalf("obj-%d holds %q, which was never sent to it", o, v)
				}
				if present[v] {
					t.Fatalf("%q is present twice", v)
				}
				present[v] = true
			}
		}
		unacked := 0
		for v, o := range acked {
			if !present[v] {
				t.Fatalf("acknowledged insert %q into obj-%d is missing after kill -9 and restart", v, o)
			}
		}
		for v := range present {
			if _, ok := acked[v]; !ok {
				unacked++
			}
		}
		t.Logf("round %d: all %d acknowledged rows present, %d present without an acknowledgement", round, len(acked), unacked)

		// Every database takes writes again, and an acknowledged value
		// is really there: inserting it again breaks its UNIQUE index.
		for o := range objects {
			sqlRows(t, p.url, path(o), "INSERT INTO t(v) VALUES (?)", fmt.Sprintf("after-restart-%d-%d", round, o))
		}
		for v, o := range acked {
			status, ans, err := sqlCall(context.Background(), client, p.url, path(o), map[string]any{"sql": "INSERT INTO t(v) VALUES (?)", "params": []any{v}})
			if err != nil || status != http.StatusBadRequest || !strings.Contains(string(ans), "UNIQUE constraint failed") {
				t.Fatalf("inserting acknowledged %q again: %d %s %v", v, status, ans, err)
			}
			break
		}
		for o := range objects {
			attempted[fmt.Sprintf("after-restart-%d-%d", round, o)] = o
			acked[fmt.Sprintf("after-restart-%d-%d", round, o)] = o
		}
	}
}
