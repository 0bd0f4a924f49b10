package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/internal/testnode"
)

// decode parses the single JSON line of r's stdout into v.
func decode(t testing.TB, r result, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r)
	}
}

// problem parses the JSON problem --json writes on stderr.
func problem(t testing.TB, r result) map[string]any {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal([]byte(r.stderr), &p); err != nil {
		t.Fatalf("stderr is not a JSON problem: %v\n%s", err, r)
	}
	return p
}

func TestKV(t *testing.T) {
	obj := objName(t)

	r := must(t, 0, "", "kv", "put", obj, "profile", `{"name":"Alice"}`, "--content-type", "json", "--json")
	var put struct{ Version string }
	decode(t, r, &put)
	if put.Version == "" {
		t.Fatalf("no version: %s", r)
	}

	// Raw bytes for people and pipes.
	if r := must(t, 0, "", "kv", "get", obj, "profile"); r.stdout != `{"name":"Alice"}` {
		t.Fatalf("kv get: %s", r)
	}
	// An entry with --json.
	var e struct {
		Key, Version string
		Value        map[string]string
	}
	decode(t, must(t, 0, "", "--json", "kv", "get", obj, "profile"), &e)
	if e.Key != "profile" || e.Version != put.Version || e.Value["name"] != "Alice" {
		t.Fatalf("kv get --json: %+v", e)
	}
	// --stale reads too.
	must(t, 0, "", "kv", "get", obj, "profile", "--stale")

	// A missing key is exit 2, with the code and detail on stderr.
	r = must(t, 2, "", "kv", "get", obj, "missing")
	if r.stdout != "" || !strings.Contains(r.stderr, "not_found (404)") || !strings.Contains(r.stderr, "missing") {
		t.Fatalf("missing key: %s", r)
	}
	p := problem(t, must(t, 2, "", "kv", "get", obj, "missing", "--json"))
	if p["code"] != "not_found" || p["status"] != 404.0 || p["exitCode"] != 2.0 {
		t.Fatalf("problem: %v", p)
	}

	// Preconditions: exit 3.
	must(t, 3, "", "kv", "put", obj, "profile", "x", "--if-absent")
	must(t, 3, "", "kv", "put", obj, "profile", "x", "--if-version", "1")
	r = must(t, 0, "", "kv", "put", obj, "profile", `{"name":"Bob"}`, "-t", "json", "--if-version", put.Version)
	if !strings.HasPrefix(r.stdout, "version ") {
		t.Fatalf("kv put: %s", r)
	}
	must(t, 1, "", "kv", "put", obj, "profile", "x", "--if-absent", "--if-exists")
	must(t, 1, "", "kv", "put", obj, "profile", "{not json", "-t", "json")

	// The value from stdin ("-"), raw bytes: valueBase64 in JSON.
	blob := []byte{0, 1, 2, 255}
	must(t, 0, string(blob), "kv", "put", obj, "blob", "-")
	if r := must(t, 0, "", "kv", "get", obj, "blob"); r.stdout != string(blob) {
		t.Fatalf("blob: %q", r.stdout)
	}
	decode(t, must(t, 0, "", "kv", "get", obj, "blob", "--json"), &e)
	var raw map[string]any
	decode(t, must(t, 0, "", "kv", "get", obj, "blob", "--json"), &raw)
	if raw["valueBase64"] != "AAEC/w==" || raw["value"] != nil {
		t.Fatalf("blob --json: %v", raw)
	}

	// Listing: a table, JSON, pages.
	for i := range 3 {
		must(t, 0, "", "kv", "put", obj, "item:"+strconv.Itoa(i), strconv.Itoa(i), "-t", "json")
	}
	r = must(t, 0, "", "kv", "list", obj, "--prefix", "item:")
	if !strings.Contains(r.stdout, "KEY") || strings.Count(r.stdout, "item:") != 3 {
		t.Fatalf("kv list: %s", r)
	}
	var page struct {
		Entries []struct {
			Key     string
			Value   json.RawMessage
			Version string
		}
		Cursor *string
	}
	decode(t, must(t, 0, "", "kv", "list", obj, "--prefix", "item:", "--limit", "2", "--json"), &page)
	if len(page.Entries) != 2 || page.Cursor == nil || string(page.Entries[1].Value) != "1" {
		t.Fatalf("first page: %+v", page)
	}
	decode(t, must(t, 0, "", "kv", "list", obj, "--prefix", "item:", "--limit", "2", "--cursor", *page.Cursor, "--json"), &page)
	if len(page.Entries) != 1 || page.Entries[0].Key != "item:2" || page.Cursor != nil {
		t.Fatalf("second page: %+v", page)
	}
	page.Entries = nil // json.Unmarshal would keep the old values
	decode(t, must(t, 0, "", "kv", "list", obj, "--prefix", "item:", "--limit", "1", "--all", "--reverse", "--keys-only", "--json"), &page)
	if len(page.Entries) != 3 || page.Entries[0].Key != "item:2" || page.Entries[0].Value != nil {
		t.Fatalf("--all --reverse --keys-only: %+v", page)
	}

	// Delete: a missing key is not an error.
	var del struct{ Deleted bool }
	decode(t, must(t, 0, "", "kv", "delete", obj, "blob", "--json"), &del)
	if !del.Deleted {
		t.Fatal("not deleted")
	}
	decode(t, must(t, 0, "", "kv", "delete", obj, "blob", "--json"), &del)
	if del.Deleted {
		t.Fatal("deleted twice")
	}
	must(t, 3, "", "kv", "delete", obj, "blob", "--if-exists")
	must(t, 2, "", "kv", "get", obj, "blob")

	// An Idempotency-Key: the repeat answers the first version.
	r1 := must(t, 0, "", "kv", "put", obj, "k", "v1", "--idempotency-key", "cli-test-"+obj)
	r2 := must(t, 0, "", "kv", "put", obj, "k", "v1", "--idempotency-key", "cli-test-"+obj)
	if r1.stdout != r2.stdout {
		t.Fatalf("idempotent repeat: %q vs %q", r1.stdout, r2.stdout)
	}
	must(t, 3, "", "kv", "put", obj, "k", "other", "--idempotency-key", "cli-test-"+obj) // idempotency_key_reused
}

func TestTx(t *testing.T) {
	obj := objName(t)
	body := `{"if":  [{"key":"lock","exists":false}],
	 "ops": [{"put": {"visits": 0, "lock": true, "blob": {"valueBase64": "AAEC"}}},
	         {"incr": {"key": "visits", "by": 2}},
	         {"get": ["visits", "blob", "nope"]},
	         {"list": {"prefix": "vis"}},
	         {"sql": "SELECT ? AS a, ? AS b, ? AS c", "params": [1, "x", 1.5]},
	         {"setAlarm": {"scheduledTime": 4102444800000}},
	         {"getAlarm": {}},
	         {"deleteAlarm": {}},
	         {"delete": ["lock"]}]}`
	file := filepath.Join(t.TempDir(), "tx.json")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Results []map[string]json.RawMessage
		Version string
	}
	decode(t, must(t, 0, "", "tx", obj, file, "--json"), &res)
	if len(res.Results) != 9 || res.Version == "" {
		t.Fatalf("tx: %+v", res)
	}
	want := map[int]map[string]string{
		0: {"written": "3"},
		1: {"value": "2"},
		3: {"cursor": "null"},
		6: {"scheduledTime": "4102444800000"},
		8: {"deleted": "1"},
	}
	for i, fields := range want {
		for k, v := range fields {
			if got := string(res.Results[i][k]); got != v {
				t.Errorf("result %d %s: got %s, want %s", i, k, got, v)
			}
		}
	}
	var get map[string]map[string]any
	if err := json.Unmarshal(res.Results[2]["entries"], &get); err != nil {
		t.Fatal(err)
	}
	if get["visits"]["value"] != 2.0 || get["blob"]["valueBase64"] != "AAEC" || get["nope"] != nil {
		t.Fatalf("get: %v", get)
	}
	if got := string(res.Results[4]["rows"]); got != `[[1,"x",1.5]]` {
		t.Fatalf("sql rows: %s", got)
	}

	// From stdin, for people.
	r := must(t, 0, `{"ops":[{"incr":{"key":"visits"}},{"get":["visits"]}]}`, "tx", obj)
	if !strings.Contains(r.stdout, "op 0 incr: 3") || !strings.Contains(r.stdout, "visits") || !strings.Contains(r.stdout, "version ") {
		t.Fatalf("tx for people: %s", r)
	}
	// A failing condition: 412, exit 3, which condition.
	p := problem(t, must(t, 3, `{"if":[{"key":"visits","exists":false}],"ops":[{"put":{"x":1}}]}`, "tx", obj, "-", "--json"))
	if p["code"] != "precondition_failed" || p["condition"] != 0.0 {
		t.Fatalf("problem: %v", p)
	}
	// incr of a string: 409 not_a_number, exit 3.
	must(t, 3, `{"ops":[{"put":{"s":"text"}},{"incr":{"key":"s"}}]}`, "tx", obj)
	// A bad SQL op rolls back: exit 4, and the put before it is not applied.
	must(t, 4, `{"ops":[{"put":{"rolled":1}},{"sql":"SELECT * FROM nowhere"}]}`, "tx", obj)
	must(t, 2, "", "kv", "get", obj, "rolled")
	// Input the CLI cannot read: exit 1, nothing sent.
	must(t, 1, `{"ops":[{"frobnicate":{}}]}`, "tx", obj)
	must(t, 1, `not json`, "tx", obj)
	must(t, 1, "", "tx", obj, filepath.Join(t.TempDir(), "missing.json"))
}

func TestSQL(t *testing.T) {
	obj := objName(t)
	must(t, 0, "", "sql", obj, "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, n REAL, b BLOB)")
	r := must(t, 0, "", "sql", obj, "INSERT INTO t(name, n, b) VALUES (?, ?, ?)", "alice", "1.5", `{"valueBase64":"AAEC"}`)
	if strings.TrimSpace(r.stdout) != "(1 row written)" {
		t.Fatalf("insert: %s", r)
	}
	// A quoted JSON string stays text; "--" lets a negative number through.
	must(t, 0, "", "sql", obj, "INSERT INTO t(name, n) VALUES (?, ?)", `"42"`, "--", "-3")
	var ans struct {
		Results []struct {
			Columns     []string
			Rows        [][]any
			RowsRead    int
			RowsWritten int
		}
		DatabaseSize int
	}
	decode(t, must(t, 0, "", "sql", obj, "SELECT id, name, n, b, typeof(name) FROM t ORDER BY id", "--json"), &ans)
	if len(ans.Results) != 1 || ans.DatabaseSize == 0 {
		t.Fatalf("answer: %+v", ans)
	}
	rows := ans.Results[0].Rows
	if len(rows) != 2 || rows[0][1] != "alice" || rows[0][2] != 1.5 || rows[0][3].(map[string]any)["valueBase64"] != "AAEC" ||
		rows[1][1] != "42" || rows[1][4] != "text" || rows[1][2] != -3.0 || rows[1][3] != nil {
		t.Fatalf("rows: %v", rows)
	}
	r = must(t, 0, "", "sql", obj, "SELECT name FROM t WHERE id = ?", "1")
	if r.stdout != "name\n----\nalice\n" {
		t.Fatalf("table: %q", r.stdout)
	}
	// Read-only, stale.
	must(t, 0, "", "sql", obj, "SELECT count(*) FROM t", "--read-only", "--stale")

	// A batch from a file, and from stdin as a bare array.
	batch := `{"batch":[{"sql":"INSERT INTO t(name) VALUES (?)","params":["bob"]},{"sql":"SELECT count(*) AS c FROM t"}]}`
	file := filepath.Join(t.TempDir(), "batch.json")
	os.WriteFile(file, []byte(batch), 0o600)
	decode(t, must(t, 0, "", "sql", obj, "--batch", file, "--json"), &ans)
	if len(ans.Results) != 2 || ans.Results[0].RowsWritten != 1 || ans.Results[1].Rows[0][0] != 3.0 {
		t.Fatalf("batch: %+v", ans)
	}
	// A batch is one transaction: the failing second statement undoes the first.
	must(t, 4, `[{"sql":"INSERT INTO t(name) VALUES ('carol')"},{"sql":"INSERT INTO nowhere VALUES (1)"}]`, "sql", obj, "--batch", "-")
	decode(t, must(t, 0, "", "sql", obj, "SELECT count(*) FROM t WHERE name = 'carol'", "--json"), &ans)
	if ans.Results[0].Rows[0][0] != 0.0 {
		t.Fatal("the failed batch was applied")
	}

	// Errors: exit 4 with the code on stderr.
	for _, c := range []struct{ sql, code string }{
		{"BEGIN", "sql_transaction_control"},
		{"SELECT * FROM nowhere", "sql_error"},
		{"PRAGMA journal_mode", "sql_forbidden"},
	} {
		r := must(t, 4, "", "sql", obj, c.sql)
		if !strings.Contains(r.stderr, c.code) {
			t.Errorf("%s: %s", c.sql, r)
		}
	}
	must(t, 1, "", "sql", obj, "SELECT 1", "--batch", file)
	must(t, 1, `{"batch":[]}`, "sql", obj, "--batch", "-")
}

// TestShellScript feeds the shell a script on stdin (not a terminal): the
// statements run one by one, dot-commands work, and the first error stops
// it with its exit code.
func TestShellScript(t *testing.T) {
	obj := objName(t)
	script := `-- a comment; with a semicolon
CREATE TABLE users(
  id INTEGER PRIMARY KEY,
  name TEXT -- trailing; comment
);
INSERT INTO users(name) VALUES ('a;b'); INSERT INTO users(name) VALUES ('it''s');
CREATE TRIGGER upper_name AFTER INSERT ON users BEGIN
  UPDATE users SET name = upper(name) WHERE id = new.id;
END;
INSERT INTO users(name) VALUES ('c');
.tables
.schema users
SELECT id, name
  FROM users
  ORDER BY id;
SELECT count(*) AS n FROM users`
	r := must(t, 0, script, "sql", obj)
	// A trigger's writes are not in SQLite's count of the statement's.
	want := `(1 row written)
(1 row written)
(1 row written)
users
CREATE TABLE users(
  id INTEGER PRIMARY KEY,
  name TEXT -- trailing; comment
);
CREATE TRIGGER upper_name AFTER INSERT ON users BEGIN
  UPDATE users SET name = upper(name) WHERE id = new.id;
END;
id  name
--  ----
1   a;b
2   it's
3   C
n
-
3
`
	if r.stdout != want {
		t.Fatalf("shell output:\n%s\nwant:\n%s", r.stdout, want)
	}
	if strings.Contains(r.stdout, "cairn>") {
		t.Fatal("a prompt without a terminal")
	}

	// --json: one API answer per statement, one per line.
	r = must(t, 0, "SELECT 1 AS one;\nSELECT 2 AS two;\n.tables\n", "sql", obj, "--json")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("json lines: %s", r)
	}
	for i, l := range lines {
		var ans sqlAnswerJSON
		if err := json.Unmarshal([]byte(l), &ans); err != nil || len(ans.Results) != 1 {
			t.Fatalf("line %d: %v %s", i, err, l)
		}
	}

	// The first error stops the script: exit 4, later statements not run.
	r = must(t, 4, "INSERT INTO users(name) VALUES ('d');\nSELECT * FROM nowhere;\nINSERT INTO users(name) VALUES ('e');\n", "sql", obj)
	if !strings.Contains(r.stderr, "no such table: nowhere") {
		t.Fatalf("error: %s", r)
	}
	r = must(t, 0, "SELECT group_concat(name) FROM users;", "sql", obj)
	if !strings.Contains(r.stdout, "a;b,it's,C,D") || strings.Contains(r.stdout, "E") {
		t.Fatalf("after the error: %s", r)
	}
	// An unknown dot-command is a usage error; .quit ends the script.
	must(t, 1, ".frobnicate\n", "sql", obj)
	r = must(t, 0, "SELECT 1 AS x;\n.quit\nSELECT * FROM nowhere;\n", "sql", obj)
	if !strings.Contains(r.stdout, "x") {
		t.Fatalf(".quit: %s", r)
	}
}

func TestSplitStatements(t *testing.T) {
	for _, c := range []struct {
		in    string
		stmts []string
		rest  string
	}{
		{"SELECT 1;", []string{"SELECT 1;"}, ""},
		{"SELECT 1; SELECT 2;\n", []string{"SELECT 1;", "SELECT 2;"}, "\n"},
		{"SELECT 1", nil, "SELECT 1"},
		{"SELECT ';'", nil, "SELECT ';'"},
		{"SELECT 'it''s;';", []string{"SELECT 'it''s;';"}, ""},
		{`SELECT "a;b", [c;d], ` + "`e;f`;", []string{`SELECT "a;b", [c;d], ` + "`e;f`;"}, ""},
		{"SELECT 1 -- x;\n;", []string{"SELECT 1 -- x;\n;"}, ""},
		{"SELECT /* ; */ 1;", []string{"SELECT /* ; */ 1;"}, ""},
		{"SELECT /* ; ", nil, "SELECT /* ; "},
		{";;  ;", nil, ""},
		{"-- only a comment\n;", nil, ""},
		{"CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; SELECT 2; END; SELECT 3;",
			[]string{"CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; SELECT 2; END;", "SELECT 3;"}, ""},
		{"create temp trigger t after insert on x begin select 1;", nil, "create temp trigger t after insert on x begin select 1;"},
	} {
		stmts, rest := splitStatements(c.in)
		if strings.Join(stmts, "|") != strings.Join(c.stmts, "|") || rest != c.rest {
			t.Errorf("splitStatements(%q) = %q, %q; want %q, %q", c.in, stmts, rest, c.stmts, c.rest)
		}
	}
}

func TestAlarm(t *testing.T) {
	obj := objName(t)
	// No alarm: exit 2, null in JSON.
	r := must(t, 2, "", "alarm", "get", obj, "--json")
	if strings.TrimSpace(r.stdout) != `{"scheduledTime":null}` {
		t.Fatalf("no alarm: %s", r)
	}
	at := time.Now().Add(time.Hour).UnixMilli()
	var set struct{ ScheduledTime int64 }
	decode(t, must(t, 0, "", "alarm", "set", obj, strconv.FormatInt(at, 10), "--json"), &set)
	if set.ScheduledTime != at {
		t.Fatalf("set: %d", set.ScheduledTime)
	}
	decode(t, must(t, 0, "", "alarm", "get", obj, "--json"), &set)
	if set.ScheduledTime != at {
		t.Fatalf("get: %d", set.ScheduledTime)
	}
	if r := must(t, 0, "", "alarm", "get", obj); !strings.Contains(r.stdout, "(in ") {
		t.Fatalf("alarm get: %s", r)
	}
	// Other forms of time.
	must(t, 0, "", "alarm", "set", obj, "+2h")
	must(t, 0, "", "alarm", "set", obj, time.Now().Add(3*time.Hour).UTC().Format(time.RFC3339))
	must(t, 1, "", "alarm", "set", obj, "tomorrow")

	var list struct {
		Alarms []struct {
			Object        string
			ScheduledTime int64
			RetryCount    int
		}
		Cursor *string
	}
	decode(t, must(t, 0, "", "alarm", "list", "--all", "--json"), &list)
	found := false
	for _, a := range list.Alarms {
		found = found || a.Object == obj
	}
	if !found {
		t.Fatalf("alarm list: %+v", list)
	}
	r = must(t, 0, "", "alarm", "list", "--from", "+150m", "--to", "+4h")
	if !strings.Contains(r.stdout, obj) || !strings.Contains(r.stdout, "SCHEDULED") {
		t.Fatalf("alarm list: %s", r)
	}
	must(t, 0, "", "alarm", "delete", obj)
	must(t, 2, "", "alarm", "get", obj)
}

func TestNamespacesObjectsUniqueID(t *testing.T) {
	ns := "clins" + strconv.FormatInt(objSeq.Add(1), 10)
	r := must(t, 0, "", "ns", "set", ns, "--webhook", "http://127.0.0.1:9/alarm", "--alarm-timeout", "2s", "--alarm-max-retries", "0", "--json")
	var cfg struct {
		Name            string
		AlarmWebhook    *string
		AlarmTimeout    string
		AlarmMaxRetries *int
	}
	decode(t, r, &cfg)
	if cfg.Name != ns || cfg.AlarmWebhook == nil || *cfg.AlarmWebhook != "http://127.0.0.1:9/alarm" || cfg.AlarmTimeout != "2s" || cfg.AlarmMaxRetries == nil || *cfg.AlarmMaxRetries != 0 {
		t.Fatalf("ns set: %s", r)
	}
	decode(t, must(t, 0, "", "ns", "get", "--ns", ns, "--json"), &cfg)
	if cfg.AlarmTimeout != "2s" {
		t.Fatalf("ns get: %+v", cfg)
	}
	if r := must(t, 0, "", "ns", "get", ns); !strings.Contains(r.stdout, "http://127.0.0.1:9/alarm") {
		t.Fatalf("ns get: %s", r)
	}
	// A set without flags restores the defaults.
	decode(t, must(t, 0, "", "ns", "set", ns, "--json"), &cfg)
	if cfg.AlarmWebhook != nil || cfg.AlarmTimeout != "30s" {
		t.Fatalf("ns set to defaults: %+v", cfg)
	}
	must(t, 4, "", "ns", "set", ns, "--webhook", "ftp://example.com/")
	must(t, 4, "", "ns", "get", "Not-A-Namespace")

	// Objects of the namespace.
	for _, o := range []string{"doc:1", "doc:2", "other"} {
		must(t, 0, "", "kv", "put", o, "k", "v", "--ns", ns)
	}
	var list struct {
		Namespaces []struct{ Name string }
	}
	decode(t, must(t, 0, "", "ns", "list", "--json"), &list)
	found := false
	for _, n := range list.Namespaces {
		found = found || n.Name == ns
	}
	if !found {
		t.Fatalf("ns list: %+v", list)
	}
	if r := must(t, 0, "", "ns", "list"); !strings.Contains(r.stdout, ns) {
		t.Fatalf("ns list: %s", r)
	}
	var objs struct {
		Objects []struct{ Name, ID string }
		Cursor  *string
	}
	decode(t, must(t, 0, "", "objects", "list", "--ns", ns, "--prefix", "doc:", "--json"), &objs)
	if len(objs.Objects) != 2 || objs.Objects[0].Name != "doc:1" || len(objs.Objects[0].ID) != 64 {
		t.Fatalf("objects list: %+v", objs)
	}
	decode(t, must(t, 0, "", "objects", "list", "--ns", ns, "--limit", "1", "--all", "--json"), &objs)
	if len(objs.Objects) != 3 {
		t.Fatalf("objects list --all: %+v", objs)
	}
	if r := must(t, 0, "", "objects", "list", "--ns", ns); !strings.Contains(r.stdout, "other") {
		t.Fatalf("objects list: %s", r)
	}

	r = must(t, 0, "", "unique-id", "--ns", ns)
	if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).MatchString(r.stdout) {
		t.Fatalf("unique-id: %q", r.stdout)
	}
	var uid struct{ Name, ID string }
	decode(t, must(t, 0, "", "unique-id", "--json"), &uid)
	if len(uid.Name) != 64 || len(uid.ID) != 64 || uid.Name == strings.TrimSpace(r.stdout) {
		t.Fatalf("unique-id --json: %+v", uid)
	}
}

func TestCluster(t *testing.T) {
	var st struct {
		Nodes []struct {
			ID, HTTPAddr, State   string
			ShardsHeld, ShardsLed int
		}
		Shards []struct {
			ID           int
			Leader       *string
			Voters       []string
			AppliedIndex uint64
		}
	}
	decode(t, must(t, 0, "", "cluster", "status", "--json"), &st)
	if len(st.Nodes) != 1 || st.Nodes[0].ID != "n1" || st.Nodes[0].State != "alive" || st.Nodes[0].ShardsHeld != 4 || st.Nodes[0].ShardsLed != 4 {
		t.Fatalf("nodes: %+v", st.Nodes)
	}
	if len(st.Shards) != 4 || st.Shards[0].Leader == nil || *st.Shards[0].Leader != "n1" || st.Shards[0].AppliedIndex == 0 {
		t.Fatalf("shards: %+v", st.Shards)
	}
	r := must(t, 0, "", "cluster", "status")
	for _, s := range []string{"NODE", "STATE", "HELD", "LED", "SHARD", "LEADER", "VOTERS", "APPLIED", "alive", shared.URL[len("http://"):]} {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("cluster status lacks %q:\n%s", s, r.stdout)
		}
	}
	// Unknown node: 404, exit 2. Removing a live node: 409, exit 3.
	must(t, 2, "", "cluster", "drain", "no-such-node")
	r = must(t, 3, "", "cluster", "remove", "n1")
	if !strings.Contains(r.stderr, "conflict (409)") {
		t.Fatalf("remove alive: %s", r)
	}
	var rm map[string]any
	decode(t, must(t, 0, "", "cluster", "remove", "ghost", "--json"), &rm)
	if rm["removed"] != true {
		t.Fatalf("remove: %v", rm)
	}

	// Drain a node of its own cluster, so the shared one keeps serving.
	other := testnode.StartT(t, testnode.Options{ID: "d1"})
	env := map[string]string{"CAIRN_URL": other.URL}
	r = cairnEnv(t, env, "", "cluster", "drain", "d1", "--json")
	var dr map[string]any
	decode(t, r, &dr)
	if r.code != 0 || dr["draining"] != true {
		t.Fatalf("drain: %s", r)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = cairnEnv(t, env, "", "cluster", "status")
		if strings.Contains(r.stdout, "alive (draining)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node never showed as draining: %s", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestExitCodes covers each documented code at least once more, and the
// global flags that decide where requests go.
func TestExitCodes(t *testing.T) {
	obj := objName(t)
	must(t, 0, "", "kv", "put", obj, "k", "v")
	dead := deadURL(t)
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want int
		in   string
	}{
		{"help", nil, []string{"help"}, 0, ""},
		{"help of a command", nil, []string{"help", "kv", "get"}, 0, ""},
		{"-h of a command", nil, []string{"kv", "put", "-h"}, 0, ""},
		{"no command", nil, nil, 1, ""},
		{"unknown command", nil, []string{"frobnicate"}, 1, ""},
		{"unknown subcommand", nil, []string{"kv", "frobnicate"}, 1, ""},
		{"group alone", nil, []string{"kv"}, 1, ""},
		{"missing argument", nil, []string{"kv", "get", obj}, 1, ""},
		{"extra argument", nil, []string{"kv", "get", obj, "k", "x"}, 1, ""},
		{"unknown flag", nil, []string{"kv", "get", obj, "k", "--frobnicate"}, 1, ""},
		{"bad global flag", nil, []string{"--timeout", "soon", "kv", "get", obj, "k"}, 1, ""},
		{"empty url", nil, []string{"--url", ",", "kv", "get", obj, "k"}, 1, ""},
		{"refused by the client", nil, []string{"tx", obj, "--read-only"}, 1, `{"ops":[{"put":{"a":1}}]}`},
		{"ok", nil, []string{"kv", "get", obj, "k"}, 0, ""},
		{"flags before and after", nil, []string{"--ns", "default", "kv", "get", "--stale", obj, "--timeout", "5s", "k"}, 0, ""},
		{"not found", nil, []string{"kv", "get", obj, "nope"}, 2, ""},
		{"precondition", nil, []string{"kv", "put", obj, "k", "v", "--if-absent"}, 3, ""},
		{"bad name: 400", nil, []string{"kv", "get", obj, "k", "--ns", "Bad Namespace"}, 4, ""},
		{"no token: 401", map[string]string{"CAIRN_URL": shared.AuthURL}, []string{"kv", "get", obj, "k"}, 4, ""},
		{"token from the env", map[string]string{"CAIRN_URL": shared.AuthURL, "CAIRN_TOKEN": adminToken}, []string{"kv", "get", obj, "k"}, 0, ""},
		{"token flag", map[string]string{"CAIRN_URL": shared.AuthURL}, []string{"--token", adminToken, "kv", "get", obj, "k"}, 0, ""},
		{"unreachable: 5", map[string]string{"CAIRN_URL": dead}, []string{"kv", "get", obj, "k", "--timeout", "3s"}, 5, ""},
		{"unreachable write: 5", nil, []string{"--url", dead, "kv", "put", obj, "k", "v"}, 5, ""},
		{"unreachable drain: 5", nil, []string{"--url", dead, "cluster", "drain", "n1"}, 5, ""},
		{"failover to the next endpoint", nil, []string{"--url", dead + "," + shared.URL, "kv", "get", obj, "k"}, 0, ""},
		{"default url unreachable", map[string]string{}, []string{"--url", dead, "unique-id"}, 5, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := c.env
			if env == nil {
				env = map[string]string{"CAIRN_URL": shared.URL}
			}
			r := cairnEnv(t, env, c.in, c.args...)
			if r.code != c.want {
				t.Fatalf("want exit %d, got %s", c.want, r)
			}
			if c.want > 1 && !strings.HasPrefix(r.stderr, "cairn: ") {
				t.Fatalf("no error on stderr: %s", r)
			}
		})
	}
	// The help names every exit code.
	r := must(t, 0, "", "help")
	for code := range 6 {
		if !strings.Contains(r.stdout, "\n  "+strconv.Itoa(code)+"  ") {
			t.Fatalf("help does not document exit %d", code)
		}
	}
	// 5 with --json: a JSON problem with the code.
	p := problem(t, cairnEnv(t, map[string]string{"CAIRN_URL": dead}, "", "kv", "get", obj, "k", "--json"))
	if p["code"] != "unavailable" || p["exitCode"] != 5.0 {
		t.Fatalf("problem: %v", p)
	}
}
