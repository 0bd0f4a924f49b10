package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cairndb/cairn/client"
)

// maxHistory is how many entries the shell keeps in its history file.
const maxHistory = 1000

// shell reads SQL statements ended by ';' and dot-commands, one request per
// statement, like rqlite's and sqlite3's shells. On a terminal it prompts,
// keeps a history (in $CAIRN_HISTORY, default ~/.cairn_history) and goes
// on after an error; fed a script on stdin it stops at the first error,
// whose exit code the command returns.
//
// A history entry is the statement as typed, line breaks and all, so that
// !N runs what ran before: collapsed onto one line, a "--" comment would
// swallow the rest of the statement and a string would lose its spacing.
// The file holds an entry a line, its line breaks written \n and its
// backslashes \\.
//
// Line editing is the terminal's own (cooked mode: backspace, ^U, ^W):
// the standard library has no raw-mode terminal support and Cairn takes no
// terminal dependency. History is recalled with .history, !N and !!.
type shell struct {
	a           *app
	obj         *client.Object
	opts        []client.CallOption
	interactive bool
	history     []string
	histPath    string
}

const shellHelp = `Statements end with ';' and may span lines; each is one request (one transaction).
.tables            list the tables and views
.schema [table]    show the CREATE statements (of one table)
.history           list the history; !N runs entry N again, !! the last one
.help              this text
.quit / .exit      leave (so does end of input)
`

func (s *shell) run(ctx context.Context) error {
	a := s.a
	if s.interactive {
		s.loadHistory()
		fmt.Fprintf(a.stdout, "cairn sql shell: object %q of namespace %q at %s\nEnter .help for help.\n",
			s.obj.Name(), a.ns, strings.Join(a.c.Endpoints(), ","))
	}
	sc := bufio.NewScanner(a.stdin)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	var pending strings.Builder
	s.prompt(false)
	for sc.Scan() {
		line := sc.Text()
		if idleSQL(pending.String()) {
			pending.Reset()
			t := strings.TrimSpace(line)
			if t == "" {
				s.prompt(false)
				continue
			}
			if s.interactive && strings.HasPrefix(t, "!") {
				recalled, err := s.recall(t)
				if err != nil {
					fmt.Fprintf(a.stderr, "cairn: %v\n", err)
					s.prompt(false)
					continue
				}
				fmt.Fprintln(a.stdout, recalled)
				line, t = recalled, recalled
			}
			if strings.HasPrefix(t, ".") {
				s.remember(t)
				quit, err := s.dot(ctx, t)
				if err != nil {
					if !s.interactive {
						return err
					}
					s.report(err)
				}
				if quit {
					return nil
				}
				s.prompt(false)
				continue
			}
		}
		pending.WriteString(line)
		pending.WriteByte('\n')
		stmts, rest := splitStatements(pending.String())
		pending.Reset()
		pending.WriteString(rest)
		for _, st := range stmts {
			s.remember(st)
			if err := s.exec(ctx, st); err != nil {
				if !s.interactive {
					return err
				}
				s.report(err)
			}
		}
		s.prompt(!idleSQL(rest))
	}
	if err := sc.Err(); err != nil {
		return usagef("sql: reading stdin: %v", err)
	}
	if s.interactive {
		fmt.Fprintln(a.stdout) // end the prompt's line, before any output
	}
	// A last statement without its ';' still runs.
	if rest := strings.TrimSpace(pending.String()); !blankSQL(rest) {
		s.remember(rest)
		if err := s.exec(ctx, rest); err != nil {
			if !s.interactive {
				return err
			}
			s.report(err)
		}
	}
	return nil
}

// report prints an error of an interactive shell, which goes on.
func (s *shell) report(err error) {
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(s.a.stderr, "cairn: %v\n", err)
		return
	}
	s.a.fail(err)
}

func (s *shell) prompt(continued bool) {
	if !s.interactive {
		return
	}
	if continued {
		fmt.Fprint(s.a.stdout, "   ...> ")
	} else {
		fmt.Fprint(s.a.stdout, "cairn> ")
	}
}

// exec runs one statement and prints its result.
func (s *shell) exec(ctx context.Context, stmt string) error {
	rows, err := s.obj.Batch(ctx, []client.Statement{{SQL: stmt}}, s.opts...)
	if err != nil {
		return err
	}
	s.a.printResults(rows)
	return nil
}

// Queries of the dot-commands: Cairn's own tables (_cairn…) and SQLite's
// are left out.
const (
	tablesQuery = `SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')
 AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_cairn%' ESCAPE '\' ORDER BY name`
	schemaQuery = `SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL
 AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_cairn%' ESCAPE '\'`
	schemaOrder = ` ORDER BY rowid` // creation order, as sqlite3 shows it
)

// dot runs a dot-command; quit reports .quit.
func (s *shell) dot(ctx context.Context, line string) (quit bool, err error) {
	f := strings.Fields(line)
	read := append([]client.CallOption{client.ReadOnly()}, staleOpt(s.a.stale)...)
	switch f[0] {
	case ".quit", ".exit", ".q":
		return true, nil
	case ".help":
		fmt.Fprint(s.a.stdout, shellHelp)
	case ".history":
		for i, h := range s.history {
			// A statement's later lines line up under its first.
			fmt.Fprintf(s.a.stdout, "%5d  %s\n", i+1, strings.ReplaceAll(h, "\n", "\n       "))
		}
	case ".tables":
		rows, err := s.obj.Batch(ctx, []client.Statement{{SQL: tablesQuery}}, read...)
		if err != nil {
			return false, err
		}
		if s.a.jsonOut {
			s.a.printResults(rows)
			return false, nil
		}
		for _, r := range rows[0].Raw() {
			fmt.Fprintln(s.a.stdout, showCell(r[0]))
		}
	case ".schema":
		if len(f) > 2 {
			return false, usagef(".schema takes at most one table name")
		}
		st := client.Statement{SQL: schemaQuery + schemaOrder}
		if len(f) == 2 {
			st = client.Statement{SQL: schemaQuery + " AND tbl_name = ?" + schemaOrder, Args: []any{f[1]}}
		}
		rows, err := s.obj.Batch(ctx, []client.Statement{st}, read...)
		if err != nil {
			return false, err
		}
		if s.a.jsonOut {
			s.a.printResults(rows)
			return false, nil
		}
		for _, r := range rows[0].Raw() {
			fmt.Fprintf(s.a.stdout, "%s;\n", showCell(r[0]))
		}
	default:
		return false, usagef("unknown command %s; .help lists them", f[0])
	}
	return false, nil
}

func staleOpt(stale bool) []client.CallOption {
	if stale {
		return []client.CallOption{client.Stale()}
	}
	return nil
}

// recall returns history entry N of "!N", or the last of "!!".
func (s *shell) recall(t string) (string, error) {
	if len(s.history) == 0 {
		return "", fmt.Errorf("the history is empty")
	}
	if t == "!!" {
		return s.history[len(s.history)-1], nil
	}
	n, err := strconv.Atoi(t[1:])
	if err != nil || n < 1 || n > len(s.history) {
		return "", fmt.Errorf("%s: no such history entry (1–%d)", t, len(s.history))
	}
	return s.history[n-1], nil
}

// remember adds an entry to the history (interactive shells only).
func (s *shell) remember(entry string) {
	if !s.interactive {
		return
	}
	entry = strings.TrimSpace(entry)
	if n := len(s.history); n > 0 && s.history[n-1] == entry {
		return
	}
	s.history = append(s.history, entry)
	if s.histPath == "" {
		return
	}
	f, err := os.OpenFile(s.histPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return // history is a convenience: never fail a statement for it
	}
	defer f.Close()
	fmt.Fprintln(f, escapeHistory(entry))
}

func (s *shell) loadHistory() {
	s.histPath = s.a.getenv("CAIRN_HISTORY")
	if s.histPath == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return
		}
		s.histPath = filepath.Join(home, ".cairn_history")
	}
	b, err := os.ReadFile(s.histPath)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > maxHistory {
		lines = lines[len(lines)-maxHistory:]
		// Keep the file bounded too.
		_ = os.WriteFile(s.histPath, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	}
	for _, l := range lines {
		if l != "" {
			s.history = append(s.history, unescapeHistory(l))
		}
	}
}

// escapeHistory puts an entry on one line of the history file.
func escapeHistory(entry string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`).Replace(entry)
}

// unescapeHistory undoes escapeHistory. Any other backslash stays, as in
// a line of a file written before entries were escaped (LIKE … ESCAPE '\').
func unescapeHistory(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c == '\\' && i+1 < len(line) {
			switch line[i+1] {
			case '\\':
				c, i = '\\', i+1
			case 'n':
				c, i = '\n', i+1
			case 'r':
				c, i = '\r', i+1
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// splitStatements returns the complete statements at the start of text,
// each with its ';', and the incomplete rest. A ';' inside a string,
// a quoted name or a comment does not end a statement, nor one inside
// CREATE TRIGGER … BEGIN … END. Statements with nothing but comments are
// dropped.
func splitStatements(text string) (stmts []string, rest string) {
	start, i := 0, 0
	sawToken := false
	for i < len(text) {
		c := text[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := closeQuote(text, i+1, c)
			if j < 0 {
				return stmts, text[start:]
			}
			i, sawToken = j+1, true
			continue
		case c == '[':
			j := strings.IndexByte(text[i+1:], ']')
			if j < 0 {
				return stmts, text[start:]
			}
			i, sawToken = i+1+j+1, true
			continue
		case c == '-' && i+1 < len(text) && text[i+1] == '-':
			j := strings.IndexByte(text[i:], '\n')
			if j < 0 {
				return stmts, text[start:]
			}
			i += j + 1
			continue
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			j := strings.Index(text[i+2:], "*/")
			if j < 0 {
				return stmts, text[start:]
			}
			i += 2 + j + 2
			continue
		case c == ';':
			stmt := text[start : i+1]
			if isCreateTrigger(stmt) && !endsWithEnd(text[start:i]) {
				i++
				continue
			}
			if sawToken {
				stmts = append(stmts, strings.TrimSpace(stmt))
			}
			start, sawToken = i+1, false
		case c != ' ' && c != '\t' && c != '\n' && c != '\r':
			sawToken = true
		}
		i++
	}
	return stmts, text[start:]
}

// closeQuote returns the index of the quote q that closes a quoted run
// starting at from (a doubled quote is an escaped one), or -1.
func closeQuote(text string, from int, q byte) int {
	for j := from; j < len(text); j++ {
		if text[j] == q {
			if j+1 < len(text) && text[j+1] == q {
				j++
				continue
			}
			return j
		}
	}
	return -1
}

// words returns the first n words of a statement, upper case, after any
// leading whitespace and comments.
func words(stmt string, n int) []string {
	var out []string
	i := 0
	for i < len(stmt) && len(out) < n {
		switch c := stmt[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case strings.HasPrefix(stmt[i:], "--"):
			j := strings.IndexByte(stmt[i:], '\n')
			if j < 0 {
				return out
			}
			i += j + 1
		case strings.HasPrefix(stmt[i:], "/*"):
			j := strings.Index(stmt[i+2:], "*/")
			if j < 0 {
				return out
			}
			i += j + 4
		case isWordByte(c):
			j := i
			for j < len(stmt) && isWordByte(stmt[j]) {
				j++
			}
			out = append(out, strings.ToUpper(stmt[i:j]))
			i = j
		default:
			return out
		}
	}
	return out
}

func isWordByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func isCreateTrigger(stmt string) bool {
	w := words(stmt, 3)
	if len(w) < 2 || w[0] != "CREATE" {
		return false
	}
	if w[1] == "TRIGGER" {
		return true
	}
	return len(w) == 3 && (w[1] == "TEMP" || w[1] == "TEMPORARY") && w[2] == "TRIGGER"
}

func endsWithEnd(s string) bool {
	s = strings.TrimRight(s, " \t\r\n")
	j := len(s)
	for j > 0 && isWordByte(s[j-1]) {
		j--
	}
	return strings.EqualFold(s[j:], "END")
}

// blankSQL reports whether s holds nothing but whitespace and comments,
// the last of which may be unclosed (SQLite ends it at the end of input).
func blankSQL(s string) bool {
	rest, _ := stripComments(s)
	return rest == ""
}

// idleSQL reports whether s holds nothing but whitespace and closed
// comments: the next line starts afresh, so it may be a dot-command or !N.
// After an unclosed "/*" it is more of the comment.
func idleSQL(s string) bool {
	rest, open := stripComments(s)
	return rest == "" && !open
}

// stripComments removes the leading comments and whitespace of s; open
// reports a "/*" comment that s does not close.
func stripComments(s string) (rest string, open bool) {
	for {
		t := strings.TrimLeft(s, " \t\r\n")
		switch {
		case strings.HasPrefix(t, "--"):
			j := strings.IndexByte(t, '\n')
			if j < 0 {
				return "", false
			}
			s = t[j+1:]
		case strings.HasPrefix(t, "/*"):
			j := strings.Index(t[2:], "*/")
			if j < 0 {
				return "", true
			}
			s = t[j+4:]
		default:
			return t, false
		}
	}
}
