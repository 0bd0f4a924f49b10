package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinary runs the built command as a process: the exit statuses a
// shell sees, stdin from a pipe, CAIRN_URL from the environment.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "cairn")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "CAIRN_URL="+shared.URL, "CAIRN_TOKEN=", "CAIRN_NS=binary")
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return out.String(), errb.String(), 0
		case errors.As(err, &ee):
			return out.String(), errb.String(), ee.ExitCode()
		}
		t.Fatal(err)
		return "", "", -1
	}
	obj := objName(t)
	// `if cairn kv get …` works: 2 when missing, 0 when there.
	if _, stderr, code := run("", "kv", "get", obj, "flag"); code != 2 || !strings.Contains(stderr, "not_found") {
		t.Fatalf("missing: exit %d, %s", code, stderr)
	}
	if _, _, code := run("on", "kv", "put", obj, "flag", "-"); code != 0 {
		t.Fatalf("put: exit %d", code)
	}
	if out, _, code := run("", "kv", "get", obj, "flag"); code != 0 || out != "on" {
		t.Fatalf("get: exit %d, %q", code, out)
	}
	if _, _, code := run("", "kv", "put", obj, "flag", "x", "--if-absent"); code != 3 {
		t.Fatalf("if-absent: exit %d", code)
	}
	if _, _, code := run("", "sql", obj, "SELECT * FROM nowhere"); code != 4 {
		t.Fatalf("sql error: exit %d", code)
	}
	if _, _, code := run("", "--url", deadURL(t), "--timeout", "3s", "unique-id"); code != 5 {
		t.Fatalf("unreachable: exit %d", code)
	}
	if _, _, code := run("", "kv", "get"); code != 1 {
		t.Fatalf("usage: exit %d", code)
	}
	// The shell reads a script from a pipe.
	out, stderr, code := run("CREATE TABLE t(x);\nINSERT INTO t VALUES (1), (2);\nSELECT sum(x) AS s FROM t;\n", "sql", obj)
	if code != 0 || out != "(2 rows written)\ns\n-\n3\n" {
		t.Fatalf("shell: exit %d, %q, %s", code, out, stderr)
	}
	// The objects are in the namespace CAIRN_NS named.
	if out, _, code := run("", "objects", "list", "--prefix", obj); code != 0 || !strings.Contains(out, obj) {
		t.Fatalf("objects: exit %d, %s", code, out)
	}
}
