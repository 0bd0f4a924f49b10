package sqlstore

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/ncruces/go-sqlite3"
)

// Deterministic functions. SQLite's clock and randomness come from the
// library's process-wide VFS hooks (time.Now, crypto/rand), not from
// anything per connection, so each connection overrides the functions that
// read them. Every replica then computes the same values from the SQLEnv the
// proposer fixed:
//
//   - random(), randomblob(N): a PCG generator seeded from SQLEnv.Seed at
//     Begin;
//   - current_timestamp, current_date, current_time (what the SQL keywords
//     CURRENT_TIMESTAMP, … compile to, DEFAULT clauses included):
//     SQLEnv.NowMillis;
//   - date, time, datetime, julianday, unixepoch, strftime, timediff: the
//     built-in, evaluated on a helper connection that has no overrides, with
//     the time value 'now' (or a missing one) replaced by SQLEnv.NowMillis
//     and the modifiers 'localtime' and 'utc' made no-ops (time is UTC
//     everywhere in Cairn, whatever the node's TZ);
//   - changes(), total_changes(): per session rather than per connection
//     (a replica may have reopened its connection), and last_insert_rowid()
//     is reset to 0 at Begin.

// fixedTimeLayout is how the fixed 'now' is handed to the built-in date
// functions: millisecond precision, the precision of SQLite's own 'now'.
const fixedTimeLayout = "2006-01-02 15:04:05.000"

// sessionFuncs is the state the overriding functions read. Only the
// goroutine holding the connection touches it.
type sessionFuncs struct {
	nowMillis int64
	nowText   string // fixedTimeLayout
	rng       rand.PCG
	// lastChanges is what changes() returns: the rows changed by the last
	// top-level INSERT, UPDATE or DELETE of this session, 0 before one.
	lastChanges int64
	// totalBase is the connection's total_changes() at Begin.
	totalBase int64
}

func (f *sessionFuncs) reset(nowMillis int64, seed uint64, totalChanges int64) {
	f.nowMillis = nowMillis
	f.nowText = time.UnixMilli(nowMillis).UTC().Format(fixedTimeLayout)
	// The second word is a constant: any fixed value keeps the stream a
	// function of the seed alone.
	f.rng.Seed(seed, 0x63616972_6e2d7371) // "cairn-sq"
	f.lastChanges = 0
	f.totalBase = totalChanges
}

// dateFunc describes a built-in date function: where its time values are
// and where its modifiers start.
type dateFunc struct {
	name     string
	nArg     int // -1: any number
	timeArgs int // index of the first time value
	nTime    int // number of time values (2 for timediff)
	mods     int // index of the first modifier; -1: none
}

var dateFuncs = []dateFunc{
	{name: "date", nArg: -1, timeArgs: 0, nTime: 1, mods: 1},
	{name: "time", nArg: -1, timeArgs: 0, nTime: 1, mods: 1},
	{name: "datetime", nArg: -1, timeArgs: 0, nTime: 1, mods: 1},
	{name: "julianday", nArg: -1, timeArgs: 0, nTime: 1, mods: 1},
	{name: "unixepoch", nArg: -1, timeArgs: 0, nTime: 1, mods: 1},
	{name: "strftime", nArg: -1, timeArgs: 1, nTime: 1, mods: 2},
	{name: "timediff", nArg: 2, timeArgs: 0, nTime: 2, mods: -1},
}

// registerFuncs installs the overrides on c.
func (c *conn) registerFuncs() error {
	const innocuous = sqlite3.INNOCUOUS
	const deterministic = sqlite3.DETERMINISTIC | sqlite3.INNOCUOUS
	var errs []error
	add := func(name string, n int, flags sqlite3.FunctionFlag, fn sqlite3.ScalarFunction) {
		errs = append(errs, c.db.CreateFunction(name, n, flags, fn))
	}
	add("random", 0, innocuous, c.fnRandom)
	add("randomblob", 1, innocuous, c.fnRandomBlob)
	add("current_timestamp", 0, innocuous, c.fnCurrent("2006-01-02 15:04:05"))
	add("current_date", 0, innocuous, c.fnCurrent("2006-01-02"))
	add("current_time", 0, innocuous, c.fnCurrent("15:04:05"))
	add("changes", 0, innocuous, func(ctx sqlite3.Context, _ ...sqlite3.Value) {
		ctx.ResultInt64(c.fn.lastChanges)
	})
	add("total_changes", 0, innocuous, func(ctx sqlite3.Context, _ ...sqlite3.Value) {
		ctx.ResultInt64(c.db.TotalChanges() - c.fn.totalBase)
	})
	for _, d := range dateFuncs {
		// The built-ins are usable in index expressions and CHECK
		// constraints (SQLite refuses 'now' there at run time); so are
		// these, with 'now' meaning the write's fixed time.
		add(d.name, d.nArg, deterministic, c.fnDate(d))
	}
	return errors.Join(errs...)
}

func (c *conn) fnRandom(ctx sqlite3.Context, _ ...sqlite3.Value) {
	// As SQLite's random(): never the smallest int64.
	r := int64(c.fn.rng.Uint64())
	if r < 0 {
		r = -(r & math.MaxInt64)
	}
	ctx.ResultInt64(r)
}

func (c *conn) fnRandomBlob(ctx sqlite3.Context, arg ...sqlite3.Value) {
	n := arg[0].Int64()
	if n < 1 {
		n = 1 // as SQLite
	}
	if n > limitLength {
		ctx.ResultError(sqlite3.TOOBIG)
		return
	}
	b := make([]byte, n)
	for i := 0; i < len(b); i += 8 {
		v := c.fn.rng.Uint64()
		for j := i; j < len(b) && j < i+8; j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
	ctx.ResultBlob(b)
}

func (c *conn) fnCurrent(layout string) sqlite3.ScalarFunction {
	return func(ctx sqlite3.Context, _ ...sqlite3.Value) {
		ctx.ResultText(time.UnixMilli(c.fn.nowMillis).UTC().Format(layout))
	}
}

func (c *conn) fnDate(d dateFunc) sqlite3.ScalarFunction {
	return func(ctx sqlite3.Context, arg ...sqlite3.Value) {
		args := make([]helperArg, len(arg), len(arg)+1)
		for i, v := range arg {
			args[i] = copyArg(v)
		}
		// A missing time value means 'now' (date(), strftime('%s')).
		if d.nTime == 1 && len(args) == d.timeArgs {
			args = append(args, helperArg{typ: sqlite3.TEXT, b: []byte(c.fn.nowText)})
		}
		for i := range args {
			a := &args[i]
			if a.typ != sqlite3.TEXT && a.typ != sqlite3.BLOB {
				continue // only text (or a blob, read as text) can say 'now'
			}
			// SQLite compares these as C strings: up to a NUL byte.
			text := string(a.b)
			if nul := strings.IndexByte(text, 0); nul >= 0 {
				text = text[:nul]
			}
			switch {
			case i >= d.timeArgs && i < d.timeArgs+d.nTime:
				if strings.EqualFold(text, "now") {
					*a = helperArg{typ: sqlite3.TEXT, b: []byte(c.fn.nowText)}
				}
			case d.mods >= 0 && i >= d.mods:
				if strings.EqualFold(text, "localtime") || strings.EqualFold(text, "utc") {
					// Local time is UTC in Cairn: both are no-ops.
					*a = helperArg{typ: sqlite3.TEXT, b: []byte("+0 days")}
				}
			}
		}
		c.store.helpers.eval(ctx, d.name, args)
	}
}

// helperArg is a SQL value copied out of one connection, to be bound on
// another (each connection has its own memory).
type helperArg struct {
	typ sqlite3.Datatype
	i   int64
	f   float64
	b   []byte // TEXT or BLOB
}

func copyArg(v sqlite3.Value) helperArg {
	switch t := v.Type(); t {
	case sqlite3.INTEGER:
		return helperArg{typ: t, i: v.Int64()}
	case sqlite3.FLOAT:
		return helperArg{typ: t, f: v.Float()}
	case sqlite3.TEXT:
		return helperArg{typ: t, b: append([]byte{}, v.RawText()...)}
	case sqlite3.BLOB:
		return helperArg{typ: t, b: append([]byte{}, v.RawBlob()...)}
	}
	return helperArg{typ: sqlite3.NULL}
}

// helperPool hands out helper connections: in-memory databases with no
// overrides, on which the built-in date functions run. A helper is used by
// one goroutine at a time; the pool keeps the idle ones.
type helperPool struct {
	mu     sync.Mutex
	idle   []*helper
	closed bool
}

// maxIdleHelpers bounds the helpers kept open between calls.
const maxIdleHelpers = 8

type helper struct {
	db    *sqlite3.Conn
	stmts map[helperKey]*sqlite3.Stmt
}

type helperKey struct {
	name string
	n    int
}

func (p *helperPool) get() (*helper, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		h := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return h, nil
	}
	p.mu.Unlock()
	db, err := sqlite3.Open(":memory:")
	if err != nil {
		return nil, err
	}
	return &helper{db: db, stmts: make(map[helperKey]*sqlite3.Stmt)}, nil
}

func (p *helperPool) put(h *helper) {
	p.mu.Lock()
	if !p.closed && len(p.idle) < maxIdleHelpers {
		p.idle = append(p.idle, h)
		h = nil
	}
	p.mu.Unlock()
	if h != nil {
		h.close()
	}
}

func (p *helperPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, h := range idle {
		h.close()
	}
}

func (h *helper) close() {
	for _, s := range h.stmts {
		s.Close()
	}
	h.db.Close()
}

// eval evaluates the built-in fn(args…) on a helper and sets it as ctx's
// result, value by value.
func (p *helperPool) eval(ctx sqlite3.Context, fn string, args []helperArg) {
	h, err := p.get()
	if err != nil {
		ctx.ResultError(err)
		return
	}
	defer p.put(h)
	k := helperKey{fn, len(args)}
	s := h.stmts[k]
	if s == nil {
		var b strings.Builder
		b.WriteString("SELECT ")
		b.WriteString(fn)
		b.WriteByte('(')
		for i := range args {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
		}
		b.WriteByte(')')
		s, _, err = h.db.Prepare(b.String())
		if err != nil {
			ctx.ResultError(err)
			return
		}
		h.stmts[k] = s
	}
	defer s.Reset()
	for i, a := range args {
		var err error
		switch a.typ {
		case sqlite3.INTEGER:
			err = s.BindInt64(i+1, a.i)
		case sqlite3.FLOAT:
			err = s.BindFloat(i+1, a.f)
		case sqlite3.TEXT:
			err = s.BindText(i+1, string(a.b))
		case sqlite3.BLOB:
			err = s.BindBlob(i+1, a.b)
		default:
			err = s.BindNull(i + 1)
		}
		if err != nil {
			ctx.ResultError(err)
			return
		}
	}
	if !s.Step() {
		if err := s.Err(); err != nil {
			ctx.ResultError(err)
		} else {
			ctx.ResultNull()
		}
		return
	}
	switch s.ColumnType(0) {
	case sqlite3.INTEGER:
		ctx.ResultInt64(s.ColumnInt64(0))
	case sqlite3.FLOAT:
		ctx.ResultFloat(s.ColumnFloat(0))
	case sqlite3.TEXT:
		ctx.ResultRawText(s.ColumnRawText(0))
	case sqlite3.BLOB:
		ctx.ResultBlob(append([]byte{}, s.ColumnRawBlob(0)...))
	default:
		ctx.ResultNull()
	}
}
