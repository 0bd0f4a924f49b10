package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
)

// sqlRequest is the body of POST …/sql: one statement, or a batch that runs
// as one transaction.
type sqlRequest struct {
	SQL    *string           `json:"sql"`
	Params []json.RawMessage `json:"params"`
	Batch  []sqlStatement    `json:"batch"`
}

type sqlStatement struct {
	SQL    string            `json:"sql"`
	Params []json.RawMessage `json:"params"`
}

// decodeSQLRequest turns a /sql body into a tx of sql ops.
func decodeSQLRequest(body []byte) (*objectstore.Tx, error) {
	var req sqlRequest
	if err := strictUnmarshal(body, &req, "the sql body"); err != nil {
		return nil, err
	}
	var stmts []sqlStatement
	switch {
	case req.SQL != nil && req.Batch != nil:
		return nil, badRequest(codeInvalidParameter, `give either "sql" (with "params") or "batch", not both`)
	case req.SQL != nil:
		stmts = []sqlStatement{{SQL: *req.SQL, Params: req.Params}}
	case req.Batch != nil:
		if req.Params != nil {
			return nil, badRequest(codeInvalidParameter, `"params" go inside each statement of a "batch"`)
		}
		stmts = req.Batch
	default:
		return nil, badRequest(codeInvalidParameter, `the body needs "sql" or "batch"`)
	}
	if len(stmts) == 0 {
		return nil, badRequest(codeInvalidParameter, "the batch is empty")
	}
	if len(stmts) > maxTxOps {
		return nil, newError(http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("a batch has at most %d statements, got %d", maxTxOps, len(stmts)))
	}
	tx := &objectstore.Tx{}
	for i, st := range stmts {
		op, err := sqlOp(st.SQL, st.Params, fmt.Sprintf("statement %d", i))
		if err != nil {
			return nil, err
		}
		tx.Ops = append(tx.Ops, op)
	}
	if err := tx.Validate(); err != nil {
		return nil, err
	}
	return tx, nil
}

// sqlOp builds an sql op from a statement and its JSON parameters.
func sqlOp(sql string, params []json.RawMessage, what string) (objectstore.Op, error) {
	op := objectstore.Op{Kind: objectstore.OpSQL, SQL: objectstore.SQLStatement{SQL: sql}}
	for i, raw := range params {
		v, err := sqlValueFromJSON(raw)
		if err != nil {
			return op, badRequest(codeInvalidParameter, fmt.Sprintf("%s: parameter %d: %v", what, i+1, err))
		}
		op.SQL.Params = append(op.SQL.Params, v)
	}
	return op, nil
}

// sqlValueFromJSON binds a JSON value: an integer as INTEGER, any other
// number as REAL, a string as TEXT, true/false as 1/0, null as NULL, and
// {"valueBase64": "…"} as a BLOB.
func sqlValueFromJSON(raw json.RawMessage) (objectstore.SQLValue, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return objectstore.SQLValue{}, errors.New("empty value")
	}
	switch raw[0] {
	case 'n':
		if string(raw) == "null" {
			return objectstore.SQLValue{Type: objectstore.SQLNull}, nil
		}
	case 't', 'f':
		var b bool
		if err := json.Unmarshal(raw, &b); err == nil {
			if b {
				return objectstore.SQLValue{Type: objectstore.SQLInteger, Int: 1}, nil
			}
			return objectstore.SQLValue{Type: objectstore.SQLInteger}, nil
		}
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return objectstore.SQLValue{}, err
		}
		return objectstore.SQLValue{Type: objectstore.SQLText, Text: s}, nil
	case '{':
		var m map[string]string
		if err := json.Unmarshal(raw, &m); err == nil && len(m) == 1 {
			if b64, ok := m["valueBase64"]; ok {
				blob, err := base64.StdEncoding.DecodeString(b64)
				if err != nil {
					return objectstore.SQLValue{}, fmt.Errorf("valueBase64 is not base64: %v", err)
				}
				return objectstore.SQLValue{Type: objectstore.SQLBlob, Blob: blob}, nil
			}
		}
		return objectstore.SQLValue{}, errors.New(`an object parameter must be {"valueBase64": "…"}`)
	default:
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return objectstore.SQLValue{Type: objectstore.SQLInteger, Int: n}, nil
		}
		var f float64
		if err := json.Unmarshal(raw, &f); err == nil {
			return objectstore.SQLValue{Type: objectstore.SQLFloat, Float: f}, nil
		}
	}
	return objectstore.SQLValue{}, fmt.Errorf("%s is not a value SQL can bind (numbers, strings, booleans, null, {\"valueBase64\": …})", truncate(string(raw)))
}

// sqlValueJSON renders one result cell.
func sqlValueJSON(v objectstore.SQLValue) any {
	switch v.Type {
	case objectstore.SQLInteger:
		return v.Int
	case objectstore.SQLFloat:
		if math.IsNaN(v.Float) || math.IsInf(v.Float, 0) {
			return nil
		}
		return v.Float
	case objectstore.SQLText:
		return v.Text
	case objectstore.SQLBlob:
		return map[string]string{"valueBase64": base64.StdEncoding.EncodeToString(v.Blob)}
	}
	return nil
}

// sqlResultJSON is one result set as API.md shows it.
type sqlResultJSON struct {
	Columns     []string `json:"columns"`
	Rows        [][]any  `json:"rows"`
	RowsRead    int64    `json:"rowsRead"`
	RowsWritten int64    `json:"rowsWritten"`
}

func renderSQLResult(r *objectstore.SQLResult) sqlResultJSON {
	out := sqlResultJSON{Columns: r.Columns, Rows: make([][]any, len(r.Rows)), RowsRead: r.RowsRead, RowsWritten: r.RowsWritten}
	if out.Columns == nil {
		out.Columns = []string{}
	}
	for i, row := range r.Rows {
		cells := make([]any, len(row))
		for j, v := range row {
			cells[j] = sqlValueJSON(v)
		}
		out.Rows[i] = cells
	}
	return out
}

// sql answers POST …/sql.
func (s *Server) sql(w http.ResponseWriter, r *http.Request, req *request) error {
	tx, err := decodeSQLRequest(req.body)
	if err != nil {
		return err
	}
	res, err := s.runTx(w, r, req, tx)
	if err != nil {
		return err
	}
	out := struct {
		Results      []sqlResultJSON `json:"results"`
		DatabaseSize int64           `json:"databaseSize"`
	}{Results: make([]sqlResultJSON, len(res.Results)), DatabaseSize: res.SQLSize}
	for i, r := range res.Results {
		out.Results[i] = renderSQLResult(r.SQL)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// runTx runs tx on req's object as a read when it can and through Raft when
// it must:
//   - a tx with a KV write goes through Raft;
//   - a tx of KV reads only is read from one snapshot;
//   - a tx with sql ops (and KV reads) is first run as a read; if a
//     statement turns out to write, it goes through Raft, and so does a tx
//     with a statement that surely writes (INSERT, UPDATE, CREATE, …) at
//     once. Its KV reads and its SQL read one Pebble snapshot, so they see
//     one state (package sqlstore revalidates a connection's cached pages
//     against whatever view it is given).
func (s *Server) runTx(w http.ResponseWriter, r *http.Request, req *request, tx *objectstore.Tx) (*objectstore.TxResult, error) {
	hasSQL, other := tx.HasSQL()
	switch {
	case tx.Writes():
	case tx.SQLSurelyWrites():
		// An INSERT, UPDATE, …: trying it as a read first would only
		// find that it writes.
	case hasSQL:
		res, err := s.readSQL(r, req, tx, other)
		switch {
		case errors.Is(err, objectstore.ErrSQLWrites):
			// It writes: through Raft.
		case errors.Is(err, objectstore.ErrSQLBusy):
			// A long write holds the object: queue behind it in the log
			// rather than fail; a readonly token may not, so it retries.
			if requireWrite(r) != nil {
				return nil, err
			}
		case req.idemKey != "" && errors.Is(err, objectstore.ErrSQL) && requireWrite(r) == nil:
			// A keyed retry of a write that already happened can fail as
			// a read (CREATE TABLE of a table it created): the log has
			// the first answer. (A readonly token wrote nothing to retry.)
		default:
			return res, err
		}
	default:
		var res *objectstore.TxResult
		err := s.read(r, req.shard, func(rd pebble.Reader) error {
			applied, err := objectstore.AppliedIndex(rd, req.shard)
			if err != nil {
				return err
			}
			res, err = objectstore.Exec(rd, nil, req.object(), tx, applied, objectstore.ExecEnv{})
			return err
		})
		return res, err
	}
	if err := requireWrite(r); err != nil {
		return nil, err
	}
	return s.proposeTx(w, r, req, tx)
}

// readSQL runs a tx with sql ops as a read: of the live database when it
// has only sql ops (the SQL engine takes its own snapshot), of one snapshot
// when KV reads must see the same state as its SQL.
func (s *Server) readSQL(r *http.Request, req *request, tx *objectstore.Tx, withKV bool) (*objectstore.TxResult, error) {
	stale, err := staleParam(r)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	view := s.b.ReadLive
	if withKV {
		view = s.b.Read
	}
	var res *objectstore.TxResult
	err = view(ctx, req.shard, stale, func(rd pebble.Reader) error {
		applied, err := objectstore.AppliedIndex(rd, req.shard)
		if err != nil {
			return err
		}
		env := objectstore.ExecEnv{SQL: s.b.SQL(), SQLEnv: objectstore.SQLEnv{NowMillis: s.now().UnixMilli(), Seed: rand.Uint64()}}
		res, err = objectstore.Exec(rd, nil, req.object(), tx, applied, env)
		return err
	})
	return res, deadline(err)
}
