// Atomic batch with SQL: the Durable Objects pattern that wraps many
// statements in one transaction.
//
//	sql.exec('BEGIN'); for (item of items) sql.exec('INSERT OR REPLACE INTO items VALUES (?, ?)', …); sql.exec('COMMIT')
//
// In Cairn a /sql batch is one transaction: all of its statements are
// applied, or none. Explicit BEGIN/COMMIT is refused with a hint
// (sql_transaction_control): a request already is one transaction.
//
// It checks that BEGIN is refused, that a batch of upserts is applied
// whole, and that a batch whose last statement fails leaves nothing of its
// earlier statements behind.
//
//	go run ./examples/atomic-sql-batch     # against CAIRN_URL (default http://127.0.0.1:8080)
package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/cairndb/cairn/client"
	"github.com/cairndb/cairn/examples/internal/example"
)

// Item is one row of the items table.
type Item struct {
	ID    string
	Value int64
}

// BatchUpdate upserts items in one transaction.
func BatchUpdate(ctx context.Context, obj *client.Object, items []Item) error {
	stmts := make([]client.Statement, 0, len(items))
	for _, it := range items {
		stmts = append(stmts, client.Statement{SQL: "INSERT OR REPLACE INTO items VALUES (?, ?)", Args: []any{it.ID, it.Value}})
	}
	_, err := obj.Batch(ctx, stmts)
	return err
}

func contents(ctx context.Context, obj *client.Object) map[string]int64 {
	rows, err := obj.Query(ctx, "SELECT id, value FROM items")
	example.Check(err)
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var v int64
		example.Check(rows.Scan(&id, &v))
		out[id] = v
	}
	return out
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := example.Connect()
	ns := c.Namespace("examples")
	obj := ns.Object("items-" + example.Suffix(ctx, ns))
	fmt.Printf("atomic SQL batch on object %q\n", obj.Name())
	_, err := obj.SQL(ctx, "CREATE TABLE items(id TEXT PRIMARY KEY, value INTEGER NOT NULL)")
	example.Check(err)

	// The Durable Objects version's BEGIN … COMMIT is refused, with the reason.
	_, err = obj.SQL(ctx, "BEGIN")
	var ce *client.Error
	if !errors.Is(err, client.ErrSQLTransactionControl) || !errors.As(err, &ce) {
		example.Fail("BEGIN: want sql_transaction_control, got %v", err)
	}
	fmt.Printf("BEGIN is refused: %s\n", ce.Detail)

	// A batch is applied whole.
	items := []Item{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"e", 5}}
	example.Check(BatchUpdate(ctx, obj, items))
	want := map[string]int64{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
	if got := contents(ctx, obj); !maps.Equal(got, want) {
		example.Fail("after the batch: %v, want %v", got, want)
	}
	fmt.Println("a batch of 5 upserts: all applied")

	// A batch that fails at its last statement applies nothing: the first
	// three upserts are rolled back with it (NULL breaks NOT NULL).
	_, err = obj.Batch(ctx, []client.Statement{
		{SQL: "INSERT OR REPLACE INTO items VALUES (?, ?)", Args: []any{"a", 100}},
		{SQL: "INSERT OR REPLACE INTO items VALUES (?, ?)", Args: []any{"f", 6}},
		{SQL: "DELETE FROM items WHERE id = ?", Args: []any{"b"}},
		{SQL: "INSERT INTO items VALUES (?, ?)", Args: []any{"g", nil}},
	})
	if !errors.Is(err, client.ErrSQL) {
		example.Fail("the failing batch: want sql_error, got %v", err)
	}
	if got := contents(ctx, obj); !maps.Equal(got, want) {
		example.Fail("after the failed batch: %v, want it unchanged: %v", got, want)
	}
	fmt.Printf("a batch failing at its 4th statement (%v): nothing of it applied\n", err.(*client.Error).Detail)
	fmt.Println("ok")
}
