// Command cairn is the command-line client of Cairn: key/value, transactions,
// SQL (with an interactive shell), alarms, namespaces, objects and cluster
// operations over the HTTP API, through the Go client package.
//
// `cairn help` lists the commands, the flags and the exit codes, which
// scripts can rely on:
//
//	0  ok
//	1  usage error (bad flags or arguments, an unreadable input file, a
//	   call the client refuses before sending anything)
//	2  not found (a missing key, no alarm set, an unknown node)
//	3  precondition failed or conflict (412, 409)
//	4  any other error answer of the API (4xx, 500, 507)
//	5  unavailable, overloaded, commit unknown or a transport failure:
//	   worth retrying (a write may or may not have been applied)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cairndb/cairn/client"
)

// Exit codes (documented in usageText and the package doc).
const (
	exitOK          = 0
	exitUsage       = 1
	exitNotFound    = 2
	exitConflict    = 3
	exitAPI         = 4
	exitUnavailable = 5
)

// Defaults of the global flags.
const (
	defaultURL     = "http://127.0.0.1:8080"
	defaultNS      = "default"
	defaultTimeout = 30 * time.Second
)

func main() {
	a := &app{
		stdin:          os.Stdin,
		stdout:         os.Stdout,
		stderr:         os.Stderr,
		getenv:         os.Getenv,
		stdinTerminal:  isTerminal(os.Stdin),
		stdoutTerminal: isTerminal(os.Stdout),
	}
	os.Exit(a.run(context.Background(), os.Args[1:]))
}

// app is one invocation of the command: its streams, environment and
// global flags. Tests run it in-process with their own streams.
type app struct {
	stdin          io.Reader
	stdout         io.Writer
	stderr         io.Writer
	getenv         func(string) string
	stdinTerminal  bool
	stdoutTerminal bool

	// Global flags.
	urls    string
	token   string
	timeout time.Duration
	jsonOut bool
	ns      string
	stale   bool

	c *client.Client
}

// usageError is a mistake in the command line or its input: exit 1.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// notFoundError is a read that found nothing although the API answered
// 200 (no alarm set): exit 2 like a 404.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

// command is one leaf command: "kv get", "cluster status", …
type command struct {
	name     string
	synopsis string // arguments, for help
	summary  string
	run      func(a *app, ctx context.Context, args []string) error
}

// commands is every leaf command; set in init, since the commands look
// themselves up in it (a package-level initializer would be a cycle).
var commands []command

func init() {
	commands = []command{
		{"kv get", "<object> <key>", "print a value (raw bytes; --json: key, value, version)", (*app).kvGet},
		{"kv put", "<object> <key> [value|-]", "store a value (from the argument, or stdin)", (*app).kvPut},
		{"kv delete", "<object> <key>", "delete a key", (*app).kvDelete},
		{"kv list", "<object>", "list keys and values", (*app).kvList},
		{"tx", "<object> [file|-]", "run a transaction: the API's tx JSON from a file or stdin", (*app).tx},
		{"sql", "<object> [statement [param ...]] | --batch file", "run SQL; no statement: a shell (terminal) or a script (stdin)", (*app).sql},
		{"alarm get", "<object>", "print the object's alarm", (*app).alarmGet},
		{"alarm set", "<object> <time>", "set the alarm: RFC 3339, ms since the epoch, or a delay like 30s", (*app).alarmSet},
		{"alarm delete", "<object>", "remove the object's alarm", (*app).alarmDelete},
		{"alarm list", "", "list the namespace's pending alarms", (*app).alarmList},
		{"ns get", "[namespace]", "print a namespace's configuration", (*app).nsGet},
		{"ns set", "[namespace]", "replace a namespace's configuration", (*app).nsSet},
		{"ns list", "", "list namespaces", (*app).nsList},
		{"objects list", "", "list the namespace's objects", (*app).objectsList},
		{"cluster status", "", "nodes and shards as tables", (*app).clusterStatus},
		{"cluster drain", "<node>", "move a node's replicas and leaderships away", (*app).clusterDrain},
		{"cluster remove", "<node>", "declare a dead node gone for good", (*app).clusterRemove},
		{"unique-id", "", "print a fresh random object name (newUniqueId)", (*app).uniqueID},
	}
}

// cmd returns the command called name and a flag set with the global flags.
func (a *app) cmd(name string) (*command, *flag.FlagSet) {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i], a.flagSet("cairn " + name)
		}
	}
	panic("cairn: no command " + name)
}

// lookup finds the command named by the first words of args.
func lookup(args []string) (*command, []string) {
	for i := range commands {
		words := strings.Fields(commands[i].name)
		if len(args) >= len(words) && slicesEqual(args[:len(words)], words) {
			return &commands[i], args[len(words):]
		}
	}
	return nil, args
}

// subcommands lists the subcommands of group ("kv": get, put, …).
func subcommands(group string) []string {
	var out []string
	for _, c := range commands {
		if g, sub, ok := strings.Cut(c.name, " "); ok && g == group {
			out = append(out, sub)
		}
	}
	return out
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// run executes one command line and returns the exit code.
func (a *app) run(ctx context.Context, args []string) int {
	a.urls = envOr(a.getenv("CAIRN_URL"), defaultURL)
	a.token = a.getenv("CAIRN_TOKEN")
	a.ns = envOr(a.getenv("CAIRN_NS"), defaultNS)
	a.timeout = defaultTimeout

	// Global flags may come before the command (stopping at its first
	// word) and anywhere after it (each command's flag set has them too).
	fs := a.flagSet("cairn")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(a.stdout, usageText)
			return exitOK
		}
		return a.fail(usagef("%v", err))
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(a.stderr, usageText)
		return exitUsage
	}
	if rest[0] == "help" {
		if len(rest) > 1 {
			if cmd, _ := lookup(rest[1:]); cmd != nil {
				a.commandUsage(cmd, a.stdout)
				return exitOK
			}
		}
		fmt.Fprint(a.stdout, usageText)
		return exitOK
	}
	cmd, cmdArgs := lookup(rest)
	if cmd == nil {
		if subs := subcommands(rest[0]); len(subs) > 0 {
			if len(rest) == 1 {
				return a.fail(usagef("%s needs a subcommand: %s", rest[0], strings.Join(subs, ", ")))
			}
			return a.fail(usagef("unknown command %q; %s takes %s", rest[0]+" "+rest[1], rest[0], strings.Join(subs, ", ")))
		}
		return a.fail(usagef("unknown command %q", rest[0]))
	}
	if err := cmd.run(a, ctx, cmdArgs); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return a.fail(err)
	}
	return exitOK
}

func envOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// flagSet returns a flag set holding the global flags, bound to a's
// fields with their current values as defaults.
func (a *app) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.urls, "url", a.urls, "comma-separated endpoints (env CAIRN_URL)")
	fs.StringVar(&a.token, "token", a.token, "bearer token (env CAIRN_TOKEN)")
	fs.DurationVar(&a.timeout, "timeout", a.timeout, "bound on a call, retries included")
	fs.BoolVar(&a.jsonOut, "json", a.jsonOut, "machine-readable JSON output")
	fs.StringVar(&a.ns, "ns", a.ns, "namespace (env CAIRN_NS)")
	fs.BoolVar(&a.stale, "stale", a.stale, "let any replica answer reads (?consistency=stale)")
	return fs
}

// isGlobalFlag reports whether name is one of the flags of flagSet.
func isGlobalFlag(name string) bool {
	switch name {
	case "url", "token", "timeout", "json", "ns", "stale":
		return true
	}
	return false
}

// parse parses a command's flags, which may appear before, between and
// after its positional arguments ("--" ends the flags), and checks the
// number of positional arguments.
func (a *app) parse(cmd *command, fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				a.commandUsageFlags(cmd, fs, a.stdout)
				return nil, err
			}
			return nil, usagef("%s: %v", cmd.name, err)
		}
		consumed := len(args) - fs.NArg()
		rest := fs.Args()
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
		return nil, usagef("%s: wrong number of arguments; usage: cairn %s %s", cmd.name, cmd.name, cmd.synopsis)
	}
	return pos, nil
}

// client returns the Cairn client the global flags describe.
func (a *app) client() (*client.Client, error) {
	if a.c != nil {
		return a.c, nil
	}
	var eps []string
	for _, u := range strings.Split(a.urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			eps = append(eps, u)
		}
	}
	if len(eps) == 0 {
		return nil, usagef("--url: no endpoint given")
	}
	if a.timeout < 0 {
		return nil, usagef("--timeout: negative")
	}
	opts := []client.Option{client.WithTimeout(a.timeout)}
	if a.token != "" {
		opts = append(opts, client.WithToken(a.token))
	}
	c, err := client.New(eps, opts...)
	if err != nil {
		return nil, usagef("%v", err)
	}
	a.c = c
	return c, nil
}

// object returns a handle on object name of the --ns namespace.
func (a *app) object(name string) (*client.Object, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	return c.Namespace(a.ns).Object(name), nil
}

// readOpts are the options of a read: Stale with --stale.
func (a *app) readOpts() []client.CallOption {
	if a.stale {
		return []client.CallOption{client.Stale()}
	}
	return nil
}

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var ue *usageError
	var nf *notFoundError
	var ce *client.Error
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, client.ErrInvalidCall):
		return exitUsage
	case errors.As(err, &nf):
		return exitNotFound
	case errors.As(err, &ce):
		return apiExitCode(ce)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return exitUnavailable
	}
	return exitAPI
}

func apiExitCode(e *client.Error) int {
	switch e.Code {
	case "not_found":
		return exitNotFound
	case "precondition_failed", "conflict", "not_a_number", "idempotency_key_reused":
		return exitConflict
	case "unavailable", "commit_unknown", "overloaded":
		return exitUnavailable
	}
	switch {
	case e.Status == 0, e.Status == 429, e.Status == 502, e.Status == 503, e.Status == 504:
		return exitUnavailable
	case e.Status == 404:
		return exitNotFound
	case e.Status == 409, e.Status == 412:
		return exitConflict
	}
	return exitAPI
}

// fail prints err on stderr (the problem's code and detail; a JSON problem
// with --json) and returns its exit code.
func (a *app) fail(err error) int {
	code := exitCode(err)
	var ce *client.Error
	switch {
	case a.jsonOut && errors.As(err, &ce):
		p := map[string]any{"status": ce.Status, "code": ce.Code, "title": ce.Title, "detail": ce.Detail, "exitCode": code}
		if ce.Condition != nil {
			p["condition"] = *ce.Condition
		}
		if ce.IdempotencyKey != "" {
			p["idempotencyKey"] = ce.IdempotencyKey
		}
		if ce.Err != nil {
			p["error"] = ce.Err.Error()
		}
		writeJSONLine(a.stderr, p)
	case errors.As(err, &ce):
		fmt.Fprintf(a.stderr, "cairn: %s\n", describe(ce))
	case a.jsonOut:
		writeJSONLine(a.stderr, map[string]any{"code": codeName(code), "detail": err.Error(), "exitCode": code})
	case code == exitUsage:
		fmt.Fprintf(a.stderr, "cairn: %v (see 'cairn help')\n", err)
	default:
		fmt.Fprintf(a.stderr, "cairn: %v\n", err)
	}
	return code
}

// describe is an API error for people: code, status, detail.
func describe(e *client.Error) string {
	var b strings.Builder
	code := e.Code
	if code == "" {
		code = strings.ToLower(strings.ReplaceAll(e.Title, " ", "_"))
	}
	b.WriteString(code)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (%d)", e.Status)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Condition != nil {
		fmt.Fprintf(&b, " (condition %d)", *e.Condition)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Code == "commit_unknown" {
		b.WriteString(" — the write may or may not have been applied")
		if e.IdempotencyKey != "" {
			fmt.Fprintf(&b, "; repeat it with --idempotency-key %s to settle it", e.IdempotencyKey)
		}
	}
	return b.String()
}

func codeName(exit int) string {
	switch exit {
	case exitUsage:
		return "usage"
	case exitNotFound:
		return "not_found"
	case exitConflict:
		return "conflict"
	case exitUnavailable:
		return "unavailable"
	}
	return "error"
}

func (a *app) commandUsage(cmd *command, w io.Writer) {
	fmt.Fprintf(w, "usage: cairn %s %s\n  %s\n", cmd.name, cmd.synopsis, cmd.summary)
	fmt.Fprint(w, "Run 'cairn <command> -h' for its flags; 'cairn help' for the global flags and exit codes.\n")
}

func (a *app) commandUsageFlags(cmd *command, fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "usage: cairn %s %s\n  %s\n", cmd.name, cmd.synopsis, cmd.summary)
	var own []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !isGlobalFlag(f.Name) {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		fmt.Fprintln(w, "flags:")
		for _, f := range own {
			name, u := flag.UnquoteUsage(f)
			if name != "" {
				name = " " + name
			}
			fmt.Fprintf(w, "  --%s%s\n\t%s\n", f.Name, name, u)
		}
	}
	fmt.Fprint(w, "Global flags and exit codes: 'cairn help'.\n")
}

const usageText = `cairn: the command-line client of Cairn (Durable Objects over HTTP).

usage: cairn [global flags] <command> [arguments and flags]

Key/value (of object <object> in namespace --ns):
  kv get <object> <key>              print the value's raw bytes (--json: {"key","value"|"valueBase64","contentType"?,"version"})
  kv put <object> <key> [value|-]    store the argument, or stdin; --content-type (json = application/json),
                                     --if-version V, --if-absent, --if-exists, --idempotency-key K
  kv delete <object> <key>           delete; --if-version V, --if-exists, --idempotency-key K
  kv list <object>                   --prefix, --start, --start-after, --end, --reverse, --limit, --cursor,
                                     --keys-only, --all (follow cursors to the end)
Transactions:
  tx <object> [file|-]               the API's tx body {"if":[…],"ops":[…]} from a file or stdin;
                                     --idempotency-key K, --read-only (a tx of sql ops that only read)
SQL (each object has its own SQLite database):
  sql <object> <statement> [param ...]   one statement; params bind by position: JSON numbers, true,
                                     false and null, "quoted" JSON strings and {"valueBase64":…} as
                                     themselves, anything else as text (use -- before a negative number)
  sql <object> --batch <file|->      {"batch":[{"sql","params"},…]} (or just the array): one transaction
  sql <object>                       no statement: an interactive shell when stdin is a terminal
                                     (statements end with ';', .tables, .schema [table], .history,
                                     .help, .quit); a script when stdin is not (stops at the first error)
                                     sql flags: --idempotency-key K, --read-only
Alarms:
  alarm get <object>                 the alarm's time (exit 2 if none)
  alarm set <object> <time>          RFC 3339, milliseconds since the epoch, or a delay (30s, +5m)
  alarm delete <object>
  alarm list                         the namespace's pending alarms; --from, --to, --limit, --all
Namespaces and objects:
  ns get [namespace]                 configuration (default: --ns)
  ns set [namespace]                 replace it: --webhook URL, --alarm-timeout D, --alarm-max-retries N
  ns list
  objects list                       objects of --ns holding storage or an alarm; --prefix, --limit, --cursor, --all
  unique-id                          a fresh random object name (newUniqueId)
Cluster:
  cluster status                     nodes (state, addresses, shards held and led), shards (leader, voters, applied index)
  cluster drain <node>               move a node's replicas and leaderships to other nodes (admin)
  cluster remove <node>              declare a dead node gone for good (admin)

Global flags (anywhere on the line):
  --url URLS       comma-separated endpoints (env CAIRN_URL; default ` + defaultURL + `)
  --token T        bearer token (env CAIRN_TOKEN)
  --ns NAME        namespace (env CAIRN_NS; default ` + defaultNS + `)
  --timeout D      bound on each call, retries included (default 30s)
  --json           JSON for scripts: the API's answer, or the shape given above
  --stale          let any replica answer reads (faster, maybe behind)

Exit codes:
  0  ok
  1  usage error: bad flags or arguments, an unreadable or malformed input file,
     a call the client refuses before sending anything (tx --read-only with a put)
  2  not found: a missing key (kv get), no alarm (alarm get), an unknown node
  3  precondition failed (412) or conflict (409: not_a_number, idempotency_key_reused, conflict)
  4  any other error answer of the API (400, 401, 403, 413, 500, 507, …)
  5  unavailable, overloaded, commit unknown, or no endpoint reachable: retryable
     (for a write: it may or may not have been applied; see --idempotency-key)
Errors go to stderr as "cairn: <code> (<status>): <detail>" (with --json: a JSON object).
`
