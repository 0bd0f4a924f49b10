package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/cairndb/cairn/client"
)

// kvGet prints a value: its raw bytes for people and pipes, an entry for
// --json. A missing key exits 2.
func (a *app) kvGet(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("kv get")
	pos, err := a.parse(cmd, fs, args, 2, 2)
	if err != nil {
		return err
	}
	obj, err := a.object(pos[0])
	if err != nil {
		return err
	}
	v, err := obj.GetBytes(ctx, pos[1], a.readOpts()...)
	if err != nil {
		return err
	}
	if a.jsonOut {
		writeJSONLine(a.stdout, toEntryJSON(pos[1], v))
		return nil
	}
	_, err = a.stdout.Write(v.Data)
	if err == nil && a.stdoutTerminal && !bytes.HasSuffix(v.Data, []byte("\n")) {
		_, err = io.WriteString(a.stdout, "\n")
	}
	return err
}

// writeOpts are the flags every write takes.
type writeOpts struct {
	idemKey string
}

func (w *writeOpts) register(fs *flag.FlagSet) {
	fs.StringVar(&w.idemKey, "idempotency-key", "", "send the write with this Idempotency-Key (a retry applies it at most once)")
}

func (w *writeOpts) options() []client.CallOption {
	if w.idemKey != "" {
		return []client.CallOption{client.IdempotencyKey(w.idemKey)}
	}
	return nil
}

// condOpts are the preconditions of a single-key write.
type condOpts struct {
	ifVersion string
	ifAbsent  bool
	ifExists  bool
}

func (c *condOpts) options(absentAllowed bool) ([]client.CallOption, error) {
	n := 0
	var opts []client.CallOption
	if c.ifVersion != "" {
		n++
		opts = append(opts, client.IfVersion(client.Version(c.ifVersion)))
	}
	if c.ifAbsent {
		if !absentAllowed {
			return nil, usagef("--if-absent does not apply here")
		}
		n++
		opts = append(opts, client.IfAbsent())
	}
	if c.ifExists {
		n++
		opts = append(opts, client.IfExists())
	}
	if n > 1 {
		return nil, usagef("give at most one of --if-version, --if-absent, --if-exists")
	}
	return opts, nil
}

// kvPut stores the value argument, or stdin.
func (a *app) kvPut(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("kv put")
	var w writeOpts
	var c condOpts
	ct := fs.String("content-type", client.ContentTypeBytes, "the value's content type; json means application/json")
	fs.StringVar(ct, "t", client.ContentTypeBytes, "short for --content-type")
	fs.StringVar(&c.ifVersion, "if-version", "", "write only if the key is at this version (If-Match)")
	fs.BoolVar(&c.ifAbsent, "if-absent", false, "write only if the key does not exist (If-None-Match: *)")
	fs.BoolVar(&c.ifExists, "if-exists", false, "write only if the key exists (If-Match: *)")
	w.register(fs)
	pos, err := a.parse(cmd, fs, args, 2, 3)
	if err != nil {
		return err
	}
	opts, err := c.options(true)
	if err != nil {
		return err
	}
	var data []byte
	if len(pos) == 3 && pos[2] != "-" {
		data = []byte(pos[2])
	} else {
		if len(pos) == 2 && a.stdinTerminal {
			return usagef("kv put: give the value as an argument, or '-' to read it from stdin")
		}
		if data, err = io.ReadAll(a.stdin); err != nil {
			return usagef("kv put: reading stdin: %v", err)
		}
	}
	contentType := *ct
	if contentType == "json" {
		contentType = client.ContentTypeJSON
	}
	if contentType == client.ContentTypeJSON && !json.Valid(data) {
		return usagef("kv put: the value is not valid JSON")
	}
	obj, err := a.object(pos[0])
	if err != nil {
		return err
	}
	v, err := obj.PutBytes(ctx, pos[1], data, contentType, append(opts, w.options()...)...)
	if err != nil {
		return err
	}
	if a.jsonOut {
		writeJSONLine(a.stdout, map[string]any{"version": v})
		return nil
	}
	fmt.Fprintf(a.stdout, "version %s\n", v)
	return nil
}

// kvDelete deletes a key. Deleting a missing key is not an error
// ({"deleted":false}): the key is gone either way.
func (a *app) kvDelete(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("kv delete")
	var w writeOpts
	var c condOpts
	fs.StringVar(&c.ifVersion, "if-version", "", "delete only if the key is at this version (If-Match)")
	fs.BoolVar(&c.ifExists, "if-exists", false, "delete only if the key exists (If-Match: *); else exit 3")
	w.register(fs)
	pos, err := a.parse(cmd, fs, args, 2, 2)
	if err != nil {
		return err
	}
	opts, err := c.options(false)
	if err != nil {
		return err
	}
	obj, err := a.object(pos[0])
	if err != nil {
		return err
	}
	deleted, err := obj.Delete(ctx, pos[1], append(opts, w.options()...)...)
	if err != nil {
		return err
	}
	if a.jsonOut {
		writeJSONLine(a.stdout, map[string]any{"deleted": deleted})
		return nil
	}
	if deleted {
		fmt.Fprintln(a.stdout, "deleted")
	} else {
		fmt.Fprintln(a.stdout, "no such key: nothing deleted")
	}
	return nil
}

// listFlags are the options of a key listing.
type listFlags struct {
	opts client.ListOptions
	all  bool
}

func (l *listFlags) register(a *app, name string) (*command, *flag.FlagSet) {
	cmd, fs := a.cmd(name)
	fs.StringVar(&l.opts.Prefix, "prefix", "", "only keys that start with this")
	fs.StringVar(&l.opts.Start, "start", "", "first key (inclusive)")
	fs.StringVar(&l.opts.StartAfter, "start-after", "", "start after this key")
	fs.StringVar(&l.opts.End, "end", "", "stop before this key")
	fs.BoolVar(&l.opts.Reverse, "reverse", false, "descending order")
	fs.IntVar(&l.opts.Limit, "limit", 0, "most entries of one page (server default 1000)")
	fs.StringVar(&l.opts.Cursor, "cursor", "", "continue after a previous page")
	fs.BoolVar(&l.opts.KeysOnly, "keys-only", false, "leave the values out")
	fs.BoolVar(&l.all, "all", false, "follow the cursor to the last key")
	return cmd, fs
}

// kvList lists one page (or, with --all, every page) of keys.
func (a *app) kvList(ctx context.Context, args []string) error {
	var l listFlags
	cmd, fs := l.register(a, "kv list")
	pos, err := a.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	obj, err := a.object(pos[0])
	if err != nil {
		return err
	}
	var entries []client.Entry
	cursor := ""
	if l.all {
		for e, err := range obj.All(ctx, l.opts, a.readOpts()...) {
			if err != nil {
				return err
			}
			entries = append(entries, e)
		}
	} else {
		page, err := obj.List(ctx, l.opts, a.readOpts()...)
		if err != nil {
			return err
		}
		entries, cursor = page.Entries, page.Cursor
	}
	if a.jsonOut {
		writeJSONLine(a.stdout, toListJSON(entries, cursor))
		return nil
	}
	rows := make([][]string, 0, len(entries))
	for _, e := range entries {
		row := []string{e.Key, string(e.Version)}
		if !l.opts.KeysOnly {
			row = append(row, showValue(e.Value, 80))
		}
		rows = append(rows, row)
	}
	header := []string{"KEY", "VERSION"}
	if !l.opts.KeysOnly {
		header = append(header, "VALUE")
	}
	table(a.stdout, header, rows)
	if cursor != "" {
		fmt.Fprintf(a.stderr, "more keys: add --cursor %s (or --all)\n", cursor)
	}
	return nil
}

// readInput reads the named file, or stdin for "-" or "".
func (a *app) readInput(what, name string) ([]byte, error) {
	if name == "" || name == "-" {
		if name == "" && a.stdinTerminal {
			return nil, usagef("%s: give a file, or '-' to read stdin", what)
		}
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return nil, usagef("%s: reading stdin: %v", what, err)
		}
		return b, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, usagef("%s: %v", what, err)
	}
	return b, nil
}
