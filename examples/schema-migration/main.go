// Schema migration: the Durable Objects pattern that migrates an object's
// SQLite schema step by step with PRAGMA user_version.
//
//	const ver = sql.exec("PRAGMA user_version").one()?.user_version || 0;
//	if (ver === 0) { CREATE TABLE users(…); PRAGMA user_version = 1 }
//	if (ver === 1) { ALTER TABLE users ADD COLUMN email TEXT; PRAGMA user_version = 2 }
//
// In Cairn each step is one /sql batch: the DDL and the new user_version
// commit together or not at all. Two migrators racing on one object
// cannot both apply a step: the loser's DDL fails (the table or column
// exists), its whole batch rolls back, and it re-reads the version.
//
// It checks that the first run migrates 0 → 1 → 2, that a second run is a
// no-op, and that the object ends at version 2 with the email column.
//
//	go run ./examples/schema-migration     # against CAIRN_URL (default http://127.0.0.1:8080)
package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairndb/cairn/client"
	"github.com/cairndb/cairn/examples/internal/example"
)

// migrations[v] takes the schema from version v to v+1.
var migrations = [][]client.Statement{
	{
		{SQL: "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT)"},
		{SQL: "PRAGMA user_version = 1"},
	},
	{
		{SQL: "ALTER TABLE users ADD COLUMN email TEXT"},
		{SQL: "PRAGMA user_version = 2"},
	},
}

func userVersion(ctx context.Context, obj *client.Object) (int, error) {
	rows, err := obj.Query(ctx, "PRAGMA user_version")
	if err != nil {
		return 0, err
	}
	var v int
	err = rows.One(&v)
	return v, err
}

// migrate brings obj's schema to the latest version and returns how many
// steps it applied.
func migrate(ctx context.Context, obj *client.Object) (int, error) {
	applied := 0
	for {
		v, err := userVersion(ctx, obj)
		if err != nil {
			return applied, err
		}
		if v >= len(migrations) {
			return applied, nil
		}
		fmt.Printf("  user_version is %d: applying step %d → %d\n", v, v, v+1)
		if _, err := obj.Batch(ctx, migrations[v]); err != nil {
			if errors.Is(err, client.ErrSQL) {
				// Someone else may have applied this step meanwhile: if
				// so the version moved and the loop goes on from there.
				if now, verr := userVersion(ctx, obj); verr == nil && now > v {
					continue
				}
			}
			return applied, fmt.Errorf("step %d → %d: %w", v, v+1, err)
		}
		applied++
	}
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := example.Connect()
	ns := c.Namespace("examples")
	obj := ns.Object("migration-" + example.Suffix(ctx, ns))
	fmt.Printf("schema migration on object %q\n", obj.Name())

	fmt.Println("first run:")
	n, err := migrate(ctx, obj)
	example.Check(err)
	if n != 2 {
		example.Fail("the first run applied %d steps, want 2", n)
	}
	fmt.Println("second run:")
	n, err = migrate(ctx, obj)
	example.Check(err)
	if n != 0 {
		example.Fail("the second run applied %d steps, want 0 (a no-op)", n)
	}
	fmt.Println("  already at the latest version: nothing to do")

	v, err := userVersion(ctx, obj)
	example.Check(err)
	if v != 2 {
		example.Fail("user_version is %d, want 2", v)
	}
	cols, err := obj.Query(ctx, "SELECT name FROM pragma_table_info('users') ORDER BY cid")
	example.Check(err)
	var names []string
	for cols.Next() {
		var name string
		example.Check(cols.Scan(&name))
		names = append(names, name)
	}
	if strings.Join(names, ",") != "id,name,email" {
		example.Fail("users has columns %v, want id, name, email", names)
	}
	_, err = obj.SQL(ctx, "INSERT INTO users(name, email) VALUES (?, ?)", "Alice", "alice@example.com")
	example.Check(err)
	fmt.Printf("user_version = %d, users(%s): ok\n", v, strings.Join(names, ", "))
}
