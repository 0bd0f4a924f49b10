package api

import (
	"fmt"
	"net/url"
	"regexp"
	"unicode/utf8"
)

// Name rules of the HTTP API.
const (
	maxObjectNameBytes = 1024
	maxContentTypeLen  = 256
)

var namespaceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func validNamespace(ns string) error {
	if !namespaceRE.MatchString(ns) {
		return badRequest(codeInvalidName, fmt.Sprintf("namespace %q must match [a-z0-9][a-z0-9_-]{0,62}", truncate(ns)))
	}
	return nil
}

func validObjectName(name string) error {
	switch {
	case name == "":
		return badRequest(codeInvalidName, "an object name must not be empty")
	case len(name) > maxObjectNameBytes:
		return badRequest(codeInvalidName, fmt.Sprintf("an object name is at most %d bytes, got %d", maxObjectNameBytes, len(name)))
	case !utf8.ValidString(name):
		return badRequest(codeInvalidName, "an object name must be UTF-8")
	}
	return nil
}

// unescapeSegment percent-decodes one path segment.
func unescapeSegment(seg, what, code string) (string, error) {
	s, err := url.PathUnescape(seg)
	if err != nil {
		return "", badRequest(code, fmt.Sprintf("%s is not valid percent-encoding: %v", what, err))
	}
	return s, nil
}

func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
