// Package logging bridges the loggers of Cairn's libraries into log/slog, so
// that one slog.Logger, passed to each component, receives everything:
// hashicorp/raft's hclog, memberlist's and Go's standard log, and Pebble's.
package logging

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// HCLog returns an hclog.Logger that writes to l. hclog's Trace goes to
// Debug; hclog's levels below minLevel are dropped before formatting.
func HCLog(l *slog.Logger, name string, minLevel hclog.Level) hclog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	h := &hcLogger{l: l, level: minLevel}
	if name != "" {
		h.name = name
		h.l = l.With("component", name)
	}
	return h
}

type hcLogger struct {
	l       *slog.Logger
	name    string
	level   hclog.Level
	implied []any
}

var _ hclog.Logger = (*hcLogger)(nil)

func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (h *hcLogger) Log(level hclog.Level, msg string, args ...any) {
	if level < h.level || level == hclog.Off {
		return
	}
	lvl := slogLevel(level)
	if !h.l.Enabled(context.Background(), lvl) {
		return
	}
	h.l.Log(context.Background(), lvl, msg, args...)
}

func (h *hcLogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hcLogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hcLogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hcLogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hcLogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hcLogger) enabled(level hclog.Level) bool {
	return level >= h.level && h.l.Enabled(context.Background(), slogLevel(level))
}

func (h *hcLogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hcLogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hcLogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hcLogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hcLogger) IsError() bool { return h.enabled(hclog.Error) }

func (h *hcLogger) ImpliedArgs() []any { return h.implied }

func (h *hcLogger) With(args ...any) hclog.Logger {
	c := *h
	c.l = h.l.With(args...)
	c.implied = append(append([]any(nil), h.implied...), args...)
	return &c
}

func (h *hcLogger) Name() string { return h.name }

func (h *hcLogger) Named(name string) hclog.Logger {
	if h.name != "" {
		name = h.name + "." + name
	}
	return h.ResetNamed(name)
}

func (h *hcLogger) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	c.l = h.l.With("component", name)
	return &c
}

func (h *hcLogger) SetLevel(level hclog.Level) { h.level = level }
func (h *hcLogger) GetLevel() hclog.Level      { return h.level }

func (h *hcLogger) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return StdLog(h.l, slog.LevelInfo)
}

func (h *hcLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return StdLog(h.l, slog.LevelInfo).Writer()
}

// StdLog returns a *log.Logger that writes each line to l. Lines that start
// with a bracketed level, as memberlist writes them ("[WARN] memberlist: …"),
// are logged at that level; others at level.
func StdLog(l *slog.Logger, level slog.Level) *log.Logger {
	return log.New(lineWriter{l: l, level: level}, "", 0)
}

type lineWriter struct {
	l     *slog.Logger
	level slog.Level
}

func (w lineWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := w.level
	for tag, lvl := range map[string]slog.Level{
		"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo,
		"[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError,
	} {
		if rest, ok := strings.CutPrefix(msg, tag); ok {
			level, msg = lvl, strings.TrimSpace(rest)
			break
		}
	}
	w.l.Log(context.Background(), level, msg)
	return len(p), nil
}

// Pebble adapts l to Pebble's Logger (Infof, Errorf, Fatalf). Fatalf logs and
// panics: Pebble calls it only when it cannot go on.
type Pebble struct{ L *slog.Logger }

// Infof logs at Debug: Pebble reports every flush and compaction.
func (p Pebble) Infof(format string, args ...any) {
	p.L.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

// Errorf logs at Error.
func (p Pebble) Errorf(format string, args ...any) {
	p.L.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf logs at Error and panics.
func (p Pebble) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.L.Error(msg, "component", "pebble")
	panic("pebble: " + msg)
}
