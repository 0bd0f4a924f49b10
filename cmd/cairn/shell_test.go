package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The interactive shell is what `cairn sql <object>` runs when main finds
// stdin to be a terminal (isTerminal(os.Stdin), kept in app.stdinTerminal).
// These tests set that field and feed the shell's input from a string: the
// shell reads lines with a bufio.Scanner and leaves line editing to the
// terminal, so a terminal adds nothing else it would see. TestShellScript
// covers stdin that is not a terminal.

// shellSession runs `cairn sql obj` as the interactive shell against the
// shared node, fed input.
func shellSession(t *testing.T, env map[string]string, input, obj string) result {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	env["CAIRN_URL"] = shared.URL
	return runCairn(t, env, true, input, "sql", obj)
}

// banner is what the shell prints first.
func banner(obj string) string {
	return fmt.Sprintf("cairn sql shell: object %q of namespace \"default\" at %s\nEnter .help for help.\n", obj, shared.URL)
}

// TestShellInteractive runs two sessions of the shell, as two runs of the
// command, with the history file in a temporary HOME.
func TestShellInteractive(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home) // os.UserHomeDir, when CAIRN_HISTORY is not set
	obj := objName(t)

	// Entry 4 spans two lines, with a comment and a string whose spacing
	// !4 must keep; the block comment hides a line that would otherwise be
	// a dot-command; !99 is out of range; nothing runs after .exit.
	in := `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);
INSERT INTO items(name) VALUES ('apple');
SELECT * FROM nowhere;

INSERT INTO items(name) -- a comment
  VALUES ('pear  tree');
SELECT id, name FROM items ORDER BY id;
.history
!4
!!
SELECT count(*) AS n FROM items;
/* a comment
.tables */ SELECT 'still' AS s;
.tables
.schema items
.schema items extra
SELECT length('a\nb') AS len;
.help
.frobnicate
!99
.exit
SELECT 'after exit';
`
	r := shellSession(t, nil, in, obj)
	// What .history lists after the first six lines, in both sessions.
	firstHistory := `    1  CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);
    2  INSERT INTO items(name) VALUES ('apple');
    3  SELECT * FROM nowhere;
    4  INSERT INTO items(name) -- a comment
         VALUES ('pear  tree');
    5  SELECT id, name FROM items ORDER BY id;
    6  .history
`
	want := banner(obj) + `cairn> cairn> (1 row written)
cairn> cairn> cairn>    ...> (1 row written)
cairn> id  name
--  ----
1   apple
2   pear  tree
cairn> ` + firstHistory + `cairn> INSERT INTO items(name) -- a comment
  VALUES ('pear  tree');
(1 row written)
cairn> INSERT INTO items(name) -- a comment
  VALUES ('pear  tree');
(1 row written)
cairn> n
-
4
cairn>    ...> s
-
still
cairn> items
cairn> CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);
cairn> cairn> len
---
4
cairn> ` + shellHelp + `cairn> cairn> cairn> `
	if r.code != 0 || r.stdout != want {
		t.Fatalf("first session: exit %d\n%s\nwant:\n%s\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}
	// The errors, and the shell went on after each.
	wantErr := `cairn: sql_error (400): no such table: nowhere
cairn: .schema takes at most one table name
cairn: unknown command .frobnicate; .help lists them
cairn: !99: no such history entry (1–15)
`
	if r.stderr != wantErr {
		t.Fatalf("first session's errors:\n%s\nwant:\n%s", r.stderr, wantErr)
	}
	// An entry a line; the line breaks and backslashes escaped.
	histFile := filepath.Join(home, ".cairn_history")
	b, err := os.ReadFile(histFile)
	if err != nil {
		t.Fatal(err)
	}
	wantHist := `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);
INSERT INTO items(name) VALUES ('apple');
SELECT * FROM nowhere;
INSERT INTO items(name) -- a comment\n  VALUES ('pear  tree');
SELECT id, name FROM items ORDER BY id;
.history
INSERT INTO items(name) -- a comment\n  VALUES ('pear  tree');
SELECT count(*) AS n FROM items;
/* a comment\n.tables */ SELECT 'still' AS s;
.tables
.schema items
.schema items extra
SELECT length('a\\nb') AS len;
.help
.frobnicate
.exit
`
	if string(b) != wantHist {
		t.Fatalf("history file:\n%s\nwant:\n%s", b, wantHist)
	}

	// The next session starts with that history. A statement cut short
	// by the end of input still runs, and the shell exits 0.
	r = shellSession(t, nil, ".history\n!13\nSELECT count(*) AS n\n  FROM items", obj)
	want = banner(obj) + "cairn> " + firstHistory + `    7  INSERT INTO items(name) -- a comment
         VALUES ('pear  tree');
    8  SELECT count(*) AS n FROM items;
    9  /* a comment
       .tables */ SELECT 'still' AS s;
   10  .tables
   11  .schema items
   12  .schema items extra
   13  SELECT length('a\nb') AS len;
   14  .help
   15  .frobnicate
   16  .exit
   17  .history
cairn> SELECT length('a\nb') AS len;
len
---
4
cairn>    ...>    ...> 
n
-
4
`
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Fatalf("second session: exit %d\n%s\nwant:\n%s\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}
	if b, err = os.ReadFile(histFile); err != nil {
		t.Fatal(err)
	}
	wantHist += ".history\nSELECT length('a\\\\nb') AS len;\nSELECT count(*) AS n\\n  FROM items\n"
	if string(b) != wantHist {
		t.Fatalf("history file after the second session:\n%s\nwant:\n%s", b, wantHist)
	}

	// !N ran what was typed: the spacing of the string is intact.
	r = must(t, 0, "", "sql", obj, "SELECT group_concat(name, '|') AS names FROM items")
	if r.stdout != "names\n-----\napple|pear  tree|pear  tree|pear  tree\n" {
		t.Fatalf("rows: %q", r.stdout)
	}
}

// TestShellHistoryFile covers $CAIRN_HISTORY, the bound on the file, and
// lines of a file written before entries were escaped.
func TestShellHistoryFile(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	histFile := filepath.Join(t.TempDir(), "hist")
	var old strings.Builder
	for i := 1; i <= maxHistory+4; i++ {
		fmt.Fprintf(&old, "SELECT %d AS n;\n", i)
	}
	old.WriteString(`SELECT length('\_') AS old;` + "\n") // not an escape
	if err := os.WriteFile(histFile, []byte(old.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	obj := objName(t)
	r := shellSession(t, map[string]string{"CAIRN_HISTORY": histFile}, fmt.Sprintf("!1\n!%d\n!0\n!x\n!\n", maxHistory), obj)
	want := banner(obj) + `cairn> SELECT 6 AS n;
n
-
6
cairn> SELECT length('\_') AS old;
old
---
2
cairn> cairn> cairn> cairn> 
`
	wantErr := fmt.Sprintf("cairn: !0: no such history entry (1–%[1]d)\ncairn: !x: no such history entry (1–%[1]d)\ncairn: !: no such history entry (1–%[1]d)\n", maxHistory+2)
	if r.code != 0 || r.stdout != want || r.stderr != wantErr {
		t.Fatalf("exit %d\n%s\nwant:\n%s\nstderr: %s\nwant: %s", r.code, r.stdout, want, r.stderr, wantErr)
	}
	b, err := os.ReadFile(histFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != maxHistory+2 || lines[0] != "SELECT 6 AS n;" ||
		lines[maxHistory] != "SELECT 6 AS n;" || lines[maxHistory+1] != `SELECT length('\\_') AS old;` {
		t.Fatalf("history file: %d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
	}
	if _, err := os.Stat(filepath.Join(home, ".cairn_history")); !os.IsNotExist(err) {
		t.Fatalf("~/.cairn_history written with CAIRN_HISTORY set: %v", err)
	}

	// An empty history.
	r = shellSession(t, map[string]string{"CAIRN_HISTORY": filepath.Join(t.TempDir(), "new")}, "!!\n.history\n", obj)
	if r.code != 0 || r.stdout != banner(obj)+"cairn> cairn>     1  .history\ncairn> \n" || r.stderr != "cairn: the history is empty\n" {
		t.Fatalf("empty history: %s", r)
	}
}

// TestEscapeHistory: an entry survives the history file whatever it holds.
func TestEscapeHistory(t *testing.T) {
	for _, e := range []string{"SELECT 1;", "SELECT 'a\nb',\r\n'\\n' -- x\n;", `\`, `\\n`, "\\\n"} {
		line := escapeHistory(e)
		if strings.ContainsAny(line, "\r\n") || unescapeHistory(line) != e {
			t.Errorf("%q: escaped %q, back %q", e, line, unescapeHistory(line))
		}
	}
}

// TestIsTerminal: a pipe or a file on stdin is a script, not the shell.
func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "script.sql"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, f := range []*os.File{r, w, f} {
		if isTerminal(f) {
			t.Errorf("%s: a terminal", f.Name())
		}
	}
}
