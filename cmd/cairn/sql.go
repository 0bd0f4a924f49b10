package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cairndb/cairn/client"
)

// sql runs one statement, a batch, or the shell.
func (a *app) sql(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("sql")
	var w writeOpts
	w.register(fs)
	batch := fs.String("batch", "", "run the statements of this file ('-': stdin) as one transaction")
	readOnly := fs.Bool("read-only", false, "declare that the statements only read (retried like a read)")
	pos, err := a.parse(cmd, fs, args, 1, -1)
	if err != nil {
		return err
	}
	obj, err := a.object(pos[0])
	if err != nil {
		return err
	}
	opts := w.options()
	if *readOnly {
		opts = append(opts, client.ReadOnly())
	}
	if a.stale {
		opts = append(opts, client.Stale())
	}
	switch {
	case *batch != "":
		if len(pos) > 1 {
			return usagef("sql: give either a statement or --batch, not both")
		}
		body, err := a.readInput("sql --batch", *batch)
		if err != nil {
			return err
		}
		stmts, err := parseBatch(body)
		if err != nil {
			return usagef("sql --batch: %v", err)
		}
		rows, err := obj.Batch(ctx, stmts, opts...)
		if err != nil {
			return err
		}
		a.printResults(rows)
		return nil
	case len(pos) >= 2:
		params := make([]any, 0, len(pos)-2)
		for _, p := range pos[2:] {
			params = append(params, cliParam(p))
		}
		// Batch, not SQL: a batch of one statement is the same request to
		// the server, and its result prints as every batch's does.
		rows, err := obj.Batch(ctx, []client.Statement{{SQL: pos[1], Args: params}}, opts...)
		if err != nil {
			return err
		}
		a.printResults(rows)
		return nil
	}
	if w.idemKey != "" {
		return usagef("sql: --idempotency-key needs a statement or --batch (the shell sends many requests)")
	}
	sh := &shell{a: a, obj: obj, opts: opts, interactive: a.stdinTerminal}
	return sh.run(ctx)
}

// parseBatch reads {"batch":[{"sql","params"},…]} or just the array.
func parseBatch(body []byte) ([]client.Statement, error) {
	var raws []json.RawMessage
	trimmed := strings.TrimSpace(string(body))
	if strings.HasPrefix(trimmed, "[") {
		if err := strict(body, &raws); err != nil {
			return nil, err
		}
	} else {
		var in struct {
			Batch []json.RawMessage `json:"batch"`
		}
		if err := strict(body, &in); err != nil {
			return nil, err
		}
		raws = in.Batch
	}
	if len(raws) == 0 {
		return nil, fmt.Errorf("the batch is empty")
	}
	stmts := make([]client.Statement, 0, len(raws))
	for i, raw := range raws {
		var s struct {
			SQL    *string           `json:"sql"`
			Params []json.RawMessage `json:"params"`
		}
		if err := strict(raw, &s); err != nil {
			return nil, fmt.Errorf("statement %d: %v", i, err)
		}
		if s.SQL == nil {
			return nil, fmt.Errorf(`statement %d: needs "sql"`, i)
		}
		args, err := jsonParams(s.Params)
		if err != nil {
			return nil, fmt.Errorf("statement %d: %v", i, err)
		}
		stmts = append(stmts, client.Statement{SQL: *s.SQL, Args: args})
	}
	return stmts, nil
}

// sqlAnswerJSON is the answer of POST …/sql as the API writes it.
type sqlAnswerJSON struct {
	Results      []rowsJSON `json:"results"`
	DatabaseSize int64      `json:"databaseSize"`
}

// printResults writes the results of a request: the API's answer with
// --json, else each result set (a blank line between two).
func (a *app) printResults(rows []*client.Rows) {
	if a.jsonOut {
		out := sqlAnswerJSON{Results: make([]rowsJSON, 0, len(rows))}
		for _, r := range rows {
			out.Results = append(out.Results, toRowsJSON(r))
			out.DatabaseSize = r.DatabaseSize
		}
		writeJSONLine(a.stdout, out)
		return
	}
	for i, r := range rows {
		if i > 0 && len(r.Columns()) > 0 {
			fmt.Fprintln(a.stdout)
		}
		printRows(a.stdout, r)
	}
}
