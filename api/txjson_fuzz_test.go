package api

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"
)

// FuzzDecodeTx checks that decodeTx never panics, that a tx it accepts is
// valid, and that whatever it refuses maps to a client error (4xx or 501),
// never to a 500.
func FuzzDecodeTx(f *testing.F) {
	for _, seed := range []string{
		// API.md's example.
		`{"if":  [{"key":"counter","version":"41"}, {"key":"lock","exists":false}],
		 "ops": [{"get": ["counter","b"]},
		         {"put": {"counter": 42, "b": {"x": 1}}},
		         {"put": {"blob": {"valueBase64": "AAEC"}}},
		         {"delete": ["c"]},
		         {"incr": {"key": "hits", "by": 1}},
		         {"list": {"prefix": "user:", "limit": 10}},
		         {"sql": "INSERT INTO t(a,b) VALUES (?,?) RETURNING id", "params": [1, "x"]},
		         {"getAlarm": {}}, {"setAlarm": {"scheduledTime": 1764500000000}}, {"deleteAlarm": {}},
		         {"deleteAll": {}}]}`,
		// The implemented part of it.
		`{"if":[{"key":"counter","version":"41"},{"key":"lock","exists":false}],"ops":[{"get":["counter","b"]},{"put":{"counter":42,"b":{"x":1}}},{"put":{"blob":{"valueBase64":"AAEC"}}},{"delete":["c"]},{"incr":{"key":"hits","by":1}},{"list":{"prefix":"user:","limit":10}},{"deleteAll":{}}]}`,
		`{"ops":[{"list":{"start":"a","end":"z","reverse":true,"limit":10000,"keysOnly":true,"cursor":"AWZh"}}]}`,
		`{"ops":[{"list":{"startAfter":"a","prefix":"a"}}]}`,
		`{"if":[{"key":"k","version":7,"exists":true}],"ops":[]}`,
		`{"if":[{"key":"k","exists":true}]}`,
		`{"ops":[{"incr":{"key":"n","by":-0.5e3}},{"incr":{"key":"n"}}]}`,
		`{"ops":[{"put":{"a":null,"b":[1,{"c":"d"}],"c":{"valueBase64":""},"d":{"valueBase64":"AA==","x":1}}}]}`,
		`{"ops":[{"deleteAll":{"alarm":true}}]}`,
		`{"ops":[{"put":{"a":1,"a":2}}]}`,
		`{"ops":[{"get":["a"],"put":{"a":1}}]}`,
		`{"ops":[{"get":[""]}]}`,
		`{"ops":[{"put":{"\u00ff\ud800":1}}]}`,
		`{"ops":[]}`,
		`{}`,
		`null`,
		`[]`,
		`{"ops":[null,{}]}`,
		`{"ops":[{"put":{"k":{"valueBase64":"!!"}}}]} trailing`,
		`{"ops":[{"put":{"k":1}}]} `,
		`{"ops":[{"put":{"k":1}}]}]`,
		"{\"ops\":[{\"put\":{\"k\":1}}]}\n}",
	} {
		f.Add([]byte(seed))
	}
	s := &Server{log: slog.New(slog.DiscardHandler)}
	r := httptest.NewRequest("POST", "/v1/ns/a/objects/o/tx", nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		tx, err := decodeTx(body)
		if err != nil {
			if tx != nil {
				t.Fatalf("decodeTx returned a tx and an error %v", err)
			}
			ae := s.toAPIError(r, err)
			if ae.status == 500 || ae.status < 400 || ae.code == "" || ae.detail == "" {
				t.Fatalf("decodeTx's error %v maps to %d %s", err, ae.status, ae.code)
			}
			return
		}
		if tx == nil {
			t.Fatal("decodeTx returned neither a tx nor an error")
		}
		if !json.Valid(body) {
			t.Fatalf("decodeTx accepted a body that is not one JSON value: %q", body)
		}
		if err := tx.Validate(); err != nil {
			t.Fatalf("decodeTx accepted an invalid tx: %v\n%s", err, body)
		}
		if len(tx.Ops) > maxTxOps {
			t.Fatalf("decodeTx accepted %d ops", len(tx.Ops))
		}
	})
}
