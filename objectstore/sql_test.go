package objectstore

import "testing"

func TestFirstKeyword(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT 1":                          "SELECT",
		"  insert into t values (1)":        "INSERT",
		"-- a comment\nUpdate t SET v = 1":  "UPDATE",
		"/* c */ /* d */create table t(v)":  "CREATE",
		"\t\n\vWITH x AS (SELECT 1) SELECT": "WITH",
		"-- only a comment":                 "",
		"/* unclosed":                       "",
		"":                                  "",
		"(SELECT 1)":                        "",
		"_cairn_x":                          "_CAIRN_X",
	} {
		if got := FirstKeyword(sql); got != want {
			t.Errorf("FirstKeyword(%q) = %q, want %q", sql, got, want)
		}
	}
}

func TestSQLSurelyWrites(t *testing.T) {
	sqlOp := func(s string) Op { return Op{Kind: OpSQL, SQL: SQLStatement{SQL: s}} }
	for _, tc := range []struct {
		name string
		ops  []Op
		want bool
	}{
		{"insert", []Op{sqlOp("INSERT INTO t VALUES (1)")}, true},
		{"a read, then a delete", []Op{sqlOp("SELECT 1"), sqlOp(" delete from t")}, true},
		{"every writing keyword", []Op{sqlOp("replace into t values (1)")}, true},
		{"drop", []Op{sqlOp("DROP TABLE t")}, true},
		{"alter", []Op{sqlOp("ALTER TABLE t ADD COLUMN c")}, true},
		{"create after a comment", []Op{sqlOp("-- v1\nCREATE TABLE t(v)")}, true},
		// Not sure: running them tells.
		{"select", []Op{sqlOp("SELECT * FROM t")}, false},
		{"with … insert", []Op{sqlOp("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x")}, false},
		{"pragma", []Op{sqlOp("PRAGMA user_version = 2")}, false},
		{"select then insert in one string", []Op{sqlOp("SELECT 1; INSERT INTO t VALUES (1)")}, false},
		{"no sql op", []Op{{Kind: OpGet, Keys: []string{"k"}}}, false},
	} {
		if got := (&Tx{Ops: tc.ops}).SQLSurelyWrites(); got != tc.want {
			t.Errorf("%s: SQLSurelyWrites = %v, want %v", tc.name, got, tc.want)
		}
	}
}
